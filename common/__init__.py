"""What producers, the worker and the CLI share: settings, errors, logging, Redis key names and
connections, the payload contract, task publishing and the dead-letter stream."""
