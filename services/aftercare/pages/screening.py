"""The pre-visit screening pages: the form, what happens next, an expired link. In the patient's language.

The pages never tell a patient not to come: answers go to the practitioner, who decides with them.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.aftercare.domain.screening import MAX_TEXT_CHARS, Questions
from shared.clinic_config import ClinicIdentity
from shared.templates.formatting import format_phone

_environment = Environment(loader=FileSystemLoader(str(Path(__file__).parent)),
                           autoescape=select_autoescape(["html", "j2"]))

# The link is the only key to the form: it must not leave the page in a Referer, nor stay in a cache.
PRIVATE_PAGE = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
NEEDLING_TYPES = frozenset({"dry_needling", "medical_acupuncture"})

WORDING: dict[str, dict[str, str]] = {
    "en-CA": {
        "form_title": "A few questions before your visit",
        "form_intro": ("Your answers help your practitioner prepare. They go to your practitioner only, who will "
                       "go over them with you before the session."),
        "yes": "Yes", "no": "No", "submit": "Send my answers",
        "earlier": "We already have your answers. Sending the form again replaces them.",
        "too_long": "An answer is too long: please keep each to {max} characters and send again. Nothing was sent.",
        "invalid": "Some answers could not be read: please choose yes or no and send again. Nothing was sent.",
        "thanks_title": "Thank you — your answers have been sent",
        "next_needling": "Your practitioner will review this with you before needling.",
        "next_other": "Your practitioner will review this with you at the start of your session.",
        "replaced": "These answers replace the ones you sent before.",
        "change": "If something changes before your visit, you can use the same link to send new answers.",
        "expired_title": "This form is closed",
        "expired_text": ("This link is no longer valid, or your appointment has already started. "
                         "Please tell your practitioner at your visit."),
        "call_clinic": "Questions? Call us at {phone}.",
    },
    "fr-CA": {
        "form_title": "Quelques questions avant votre visite",
        "form_intro": ("Vos réponses aident votre praticien(ne) à se préparer. Elles ne vont qu'à votre "
                       "praticien(ne), qui les reverra avec vous avant la séance."),
        "yes": "Oui", "no": "Non", "submit": "Envoyer mes réponses",
        "earlier": "Nous avons déjà vos réponses. Envoyer le formulaire de nouveau les remplace.",
        "too_long": ("Une réponse est trop longue : limitez chacune à {max} caractères et envoyez de nouveau. "
                     "Rien n'a été transmis."),
        "invalid": ("Certaines réponses n'ont pas pu être lues : choisissez oui ou non et envoyez de nouveau. "
                    "Rien n'a été transmis."),
        "thanks_title": "Merci — vos réponses ont été transmises",
        "next_needling": "Votre praticien(ne) les reverra avec vous avant la puncture.",
        "next_other": "Votre praticien(ne) les reverra avec vous au début de la séance.",
        "replaced": "Ces réponses remplacent celles que vous aviez envoyées.",
        "change": ("Si quelque chose change avant votre visite, vous pouvez utiliser le même lien pour envoyer "
                   "de nouvelles réponses."),
        "expired_title": "Ce formulaire est fermé",
        "expired_text": ("Ce lien n'est plus valide, ou votre rendez-vous a déjà commencé. "
                         "Veuillez en parler à votre praticien(ne) lors de votre visite."),
        "call_clinic": "Des questions? Appelez-nous au {phone}.",
    },
}


def _locale(locale: str) -> str:
    return locale if locale in WORDING else "en-CA"


class ScreeningPages:
    def __init__(self, clinic: ClinicIdentity) -> None:
        self.clinic = clinic
        self.phone = format_phone(clinic.phone)

    def form(self, locale: str, action: str, questions: Questions, values: Mapping[str, str] | None = None, *,
             earlier: bool = False, problem: str | None = None, status: int = 200) -> HTMLResponse:
        locale = _locale(locale)
        words = WORDING[locale]
        shown = [{"id": question_id, "kind": question.kind, "text": question.text[locale],
                  "value": (values or {}).get(question_id, "")} for question_id, question in questions]
        return self._page(locale, words["form_title"], [words["form_intro"]], status=status,
                          note=words["earlier"] if earlier else None,
                          problem=words[problem].format(max=MAX_TEXT_CHARS) if problem else None,
                          form={"action": action, "questions": shown, "yes": words["yes"], "no": words["no"],
                                "submit": words["submit"], "max_text": MAX_TEXT_CHARS})

    def next_steps(self, locale: str, appointment_type: str, *, replaced: bool) -> HTMLResponse:
        locale = _locale(locale)
        words = WORDING[locale]
        paragraphs = [words["next_needling" if appointment_type in NEEDLING_TYPES else "next_other"], words["change"]]
        return self._page(locale, words["thanks_title"], paragraphs, note=words["replaced"] if replaced else None)

    def expired(self, locale: str = "en-CA") -> HTMLResponse:
        words = WORDING[_locale(locale)]
        return self._page(_locale(locale), words["expired_title"], [words["expired_text"]], status=410)

    def _page(self, locale: str, title: str, paragraphs: list[str], status: int = 200,
              **parts: object) -> HTMLResponse:
        words = WORDING[locale]
        html = _environment.get_template("screening.html.j2").render(
            locale=locale, title=title, paragraphs=[*paragraphs, words["call_clinic"].format(phone=self.phone)],
            clinic=self.clinic, clinic_phone=self.phone, **parts)
        return HTMLResponse(html, status_code=status, headers=PRIVATE_PAGE)
