"""`python -m emulator`: the same command as `triage emulator`."""

from emulator.command import emulator_command

if __name__ == "__main__":
    emulator_command()
