"""`triage config show`: what shapes a decision, as the worker would build it."""

from __future__ import annotations

import json

import click

from triage.resources import settings_or_exit
from worker.decide.prompt import decision_schema, load_template, prompt_version, system_prompt


@click.group()
def config() -> None:
    """The effective configuration."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def config_show(as_json: bool) -> None:
    """The effective system prompt, decision schema, model and prompt version."""
    settings = settings_or_exit()
    template = load_template(settings)
    shown = {
        "prompt_version": prompt_version(settings, template),
        "model": settings.model,
        "taxonomy_file": str(settings.taxonomy_file) if settings.taxonomy_file else None,
        "system_prompt": system_prompt(template, settings.categories, settings.fields),
        "schema": decision_schema(settings.category_names, True, settings.fields),
    }
    if as_json:
        click.echo(json.dumps(shown, indent=2, ensure_ascii=False))
        return
    click.echo(f"prompt version: {shown['prompt_version']}")
    click.echo(f"model: {shown['model']}")
    click.echo(f"taxonomy: {shown['taxonomy_file'] or '(built-in categories)'}")
    click.echo("\n--- system prompt ---\n" + str(shown["system_prompt"]))
    click.echo("\n--- decision schema ---\n" + json.dumps(shown["schema"], indent=2))
