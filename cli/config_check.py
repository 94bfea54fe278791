"""`clinic-notify check-config`: the clinic file is valid and every message its schedules send exists."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import DEFAULT_CONFIG
from cli.output import fail, stdout
from shared.clinic_config import ClinicConfig, ClinicConfigError, load_clinic_config
from shared.delivery.wiring import checked_catalogue
from shared.scheduling.steps import Schedule
from shared.templates.catalogue import LOCALES, MissingTemplates, TemplateCatalogue


def register(app: typer.Typer) -> None:
    app.command("check-config")(check_config)


def check_config(
    path: Annotated[Path, typer.Argument(envvar="CLINIC_CONFIG_FILE", dir_okay=False,
                                         help="The clinic's configuration file.")] = DEFAULT_CONFIG,
) -> None:
    """Validate a clinic configuration file as the services do at start-up; exit 1 if they would refuse it."""
    try:
        clinic = load_clinic_config(path)
    except ClinicConfigError as error:
        fail(str(error))
    problems = _missing_step_templates(clinic, TemplateCatalogue())
    if problems:
        fail(f"{path}: " + "; ".join(problems))
    try:
        checked_catalogue(clinic)  # the very check the services run before they start
    except MissingTemplates as error:
        fail(f"{path}: {error}")
    steps = sum(len(schedule.steps) for _, schedule in _schedules(clinic))
    stdout().print(
        f"{path}: OK — {clinic.clinic.name}, {len(clinic.locations)} location(s), "
        f"{steps} scheduled step(s), every template present in {' and '.join(LOCALES)}",
        markup=False,
    )


def _schedules(clinic: ClinicConfig) -> list[tuple[str, Schedule]]:
    return [(f"pre_session.{kind}", schedule) for kind, schedule in clinic.pre_session.items()] + [
        (f"aftercare.check_ins.{kind}", schedule) for kind, schedule in clinic.aftercare.check_ins.items()
    ]


def _missing_step_templates(clinic: ClinicConfig, catalogue: TemplateCatalogue) -> list[str]:
    available = catalogue.available()
    problems = []
    for where, schedule in _schedules(clinic):
        for step in schedule.steps:
            missing = [locale for locale in LOCALES if (locale, step.template, step.channel) not in available]
            if missing:
                problems.append(
                    f"{where} step {step.name!r}: no {step.channel} template {step.template!r} "
                    f"in {', '.join(missing)}"
                )
    return problems
