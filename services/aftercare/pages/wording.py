"""What the patient web pages say, in English and French."""
from __future__ import annotations

WORDING: dict[str, dict[str, str]] = {
    "en-CA": {
        "check_in_title": "How are you feeling after your visit?",
        "check_in_ask": "Tap how sore you are today, from 0 (no soreness) to 10 (the worst imaginable).",
        "confirm_score": "Your soreness today: {score} out of 10",
        "confirm_submit": "Send my answer",
        "thanks_title": "Thank you — we've recorded your answer",
        "already_title": "We already have your answer",
        "already_text": "Your answer to this check-in is already on record. Nothing more is needed.",
        "note_label": "Anything you'd like your therapist to know? (optional)",
        "note_submit": "Send my note",
        "note_thanks_title": "Thank you — your note has been sent",
        "note_too_long_title": "Your note is too long",
        "note_too_long_text": "Please keep your note to 2,000 characters and send it again. Nothing was sent.",
        "expired_title": "This link has expired",
        "expired_text": ("This link is no longer valid. "
                         "If you have questions about how you feel, please call the clinic."),
        "unsubscribe_title": "Stop these messages?",
        "unsubscribe_text_email": "Confirm and we will stop sending emails to this address.",
        "unsubscribe_text_sms": "Confirm and we will stop sending text messages to this number.",
        "unsubscribe_submit": "Unsubscribe",
        "unsubscribed_title": "You're unsubscribed",
        "unsubscribed_text": ("You will not receive these messages any more. "
                              "You can call the clinic at any time to subscribe again."),
        "urgent": "If you have trouble breathing or chest pain, call 911 now.",
        "call_clinic": "Questions or concerns? Call us at {phone}.",
    },
    "fr-CA": {
        "check_in_title": "Comment vous sentez-vous après votre visite?",
        "check_in_ask": "Touchez votre niveau de douleur aujourd'hui, de 0 (aucune) à 10 (la pire imaginable).",
        "confirm_score": "Votre douleur aujourd'hui : {score} sur 10",
        "confirm_submit": "Envoyer ma réponse",
        "thanks_title": "Merci — nous avons enregistré votre réponse",
        "already_title": "Nous avons déjà votre réponse",
        "already_text": "Votre réponse à ce suivi est déjà enregistrée. Vous n'avez rien d'autre à faire.",
        "note_label": "Souhaitez-vous dire quelque chose à votre thérapeute? (facultatif)",
        "note_submit": "Envoyer ma note",
        "note_thanks_title": "Merci — votre note a été transmise",
        "note_too_long_title": "Votre note est trop longue",
        "note_too_long_text": ("Veuillez limiter votre note à 2 000 caractères et l'envoyer de nouveau. "
                               "Rien n'a été transmis."),
        "expired_title": "Ce lien a expiré",
        "expired_text": "Ce lien n'est plus valide. Pour toute question sur votre état, veuillez appeler la clinique.",
        "unsubscribe_title": "Ne plus recevoir ces messages?",
        "unsubscribe_text_email": "Confirmez et nous cesserons d'envoyer des courriels à cette adresse.",
        "unsubscribe_text_sms": "Confirmez et nous cesserons d'envoyer des textos à ce numéro.",
        "unsubscribe_submit": "Me désabonner",
        "unsubscribed_title": "Vous êtes désabonné(e)",
        "unsubscribed_text": ("Vous ne recevrez plus ces messages. "
                              "Vous pouvez appeler la clinique en tout temps pour vous réabonner."),
        "urgent": "Si vous avez de la difficulté à respirer ou une douleur à la poitrine, composez le 911 maintenant.",
        "call_clinic": "Des questions ou des inquiétudes? Appelez-nous au {phone}.",
    },
}
