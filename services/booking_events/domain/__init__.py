"""What may happen to an appointment, and which event each change publishes. Pure: no I/O.

    booked ─┬─ reschedule ─> rescheduled ─┬─ reschedule ─> rescheduled (again)
            │                             │
            └──────────────┬──────────────┘
                           ├─ complete ─> completed   (terminal)
                           ├─ cancel   ─> cancelled   (terminal)
                           └─ no-show  ─> no_show     (terminal)
"""
