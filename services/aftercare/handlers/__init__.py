"""Apply an event or a command: decide with the domain's rules, then record in one transaction."""
from __future__ import annotations

from services.aftercare.handlers.answers import AnswerOutcome, CheckInAnswers
from services.aftercare.handlers.completed_visits import CompletedVisitHandler
from services.aftercare.handlers.consent import ConsentBook
from services.aftercare.handlers.no_reply import NoReplyWatch

__all__ = ["AnswerOutcome", "CheckInAnswers", "CompletedVisitHandler", "ConsentBook", "NoReplyWatch"]
