"""The custody state machine of one trace code: which business step may follow which state, and who holds it.

A code starts ``issued`` (generated, its batch signed by the producer). Each accepted checkpoint event moves every
code it names (and, for an event on a case or pallet, every code packed in it) by :func:`transition`:

=================  ==============================================  ==============================  ============
step               allowed from                                    leads to                        holder
=================  ==============================================  ==============================  ============
commission         issued                                          commissioned                    actor
pack, unpack       commissioned, received, returned, in_transit*   (unchanged; parent set/cleared)  actor
ship               commissioned, received, returned, recalled      in_transit                      actor
receive            in_transit                                      received                        actor
transform          commissioned, received                          transformed                     actor
sell               commissioned, received, returned                sold                            actor
deliver            sold                                            delivered                       nobody
return             sold, delivered, recalled                       returned                        actor
recall             any state after commission but destroyed        recalled                        (unchanged)
destroy            any state but destroyed                         destroyed                       (unchanged)
=================  ==============================================  ==============================  ============

(*) only unpack from in_transit. A code is sold once: after ``sell`` only deliver (the last mile), return, recall
and destroy may follow, and only a return makes it sellable again. Nothing follows ``destroyed``. ``pack`` sets the
code's parent (the case or pallet code of the event), ``unpack`` clears it and needs the code to be in that parent.

A **correction** (an event whose ``corrects`` names an earlier event of the same actor) with the same step as the
event it corrects amends that event's data (time, place) and moves no code; with another step it is checked and
applied like any new event. The scan (:mod:`api`) reads :class:`State` values from ``trace_code.state``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from node_bridge.trace import Step


class State(enum.StrEnum):
    """Where a trace code is in its custody chain (``trace_code.state``)."""

    ISSUED = "issued"
    COMMISSIONED = "commissioned"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    TRANSFORMED = "transformed"
    SOLD = "sold"
    DELIVERED = "delivered"
    RETURNED = "returned"
    RECALLED = "recalled"
    DESTROYED = "destroyed"


_AFTER_COMMISSION = frozenset(State) - {State.ISSUED, State.DESTROYED}
_IN_STOCK = frozenset({State.COMMISSIONED, State.RECEIVED, State.RETURNED})

ALLOWED_FROM: dict[Step, frozenset[State]] = {
    Step.COMMISSION: frozenset({State.ISSUED}),
    Step.PACK: _IN_STOCK,
    Step.UNPACK: _IN_STOCK | {State.IN_TRANSIT},
    Step.SHIP: _IN_STOCK | {State.RECALLED},
    Step.RECEIVE: frozenset({State.IN_TRANSIT}),
    Step.TRANSFORM: frozenset({State.COMMISSIONED, State.RECEIVED}),
    Step.SELL: _IN_STOCK,
    Step.DELIVER: frozenset({State.SOLD}),
    Step.RETURN: frozenset({State.SOLD, State.DELIVERED, State.RECALLED}),
    Step.RECALL: _AFTER_COMMISSION,
    Step.DESTROY: frozenset(State) - {State.DESTROYED},
}
"""The states each step may be applied to."""

LEADS_TO: dict[Step, State | None] = {
    Step.COMMISSION: State.COMMISSIONED,
    Step.PACK: None,
    Step.UNPACK: None,
    Step.SHIP: State.IN_TRANSIT,
    Step.RECEIVE: State.RECEIVED,
    Step.TRANSFORM: State.TRANSFORMED,
    Step.SELL: State.SOLD,
    Step.DELIVER: State.DELIVERED,
    Step.RETURN: State.RETURNED,
    Step.RECALL: State.RECALLED,
    Step.DESTROY: State.DESTROYED,
}
"""The state a step leaves a code in (None: unchanged)."""

KEEPS_HOLDER = frozenset({Step.RECALL, Step.DESTROY})
"""Steps that do not change who holds the code (a regulator's recall does not make it the custodian)."""


@dataclass
class CodeState:
    """A code's custody as ``trace_code`` keeps it."""

    state: State
    holder: str | None
    parent: str | None
    last_event: str | None


class StepNotAllowed(Exception):
    """``step`` may not follow the code's state; ``reason`` says why (for a 409 naming the state)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def allowed(step: Step, state: State) -> bool:
    """Whether ``step`` may be applied to a code in ``state``."""
    return state in ALLOWED_FROM[step]


def transition(current: CodeState, step: Step, actor: str, event_id: str, parent: str | None) -> CodeState:
    """The code's custody after ``step`` by ``actor`` (event ``event_id``; ``parent`` the event's case or pallet);
    :class:`StepNotAllowed` naming the state if the step may not follow it."""
    if not allowed(step, current.state):
        froms = ", ".join(sorted(s.value for s in ALLOWED_FROM[step]))
        raise StepNotAllowed(f"is {current.state.value}; {step.slug} is allowed only from {froms}")
    if step is Step.UNPACK and current.parent != parent:
        where = f"in {current.parent}" if current.parent else "not packed"
        raise StepNotAllowed(f"is {where}, not in the parent {parent} this unpack names")
    if step is Step.PACK and current.parent is not None and current.parent != parent:
        raise StepNotAllowed(f"is already packed in {current.parent}; unpack it first")
    state = LEADS_TO[step] or current.state
    holder = current.holder if step in KEEPS_HOLDER else actor
    if step is Step.DELIVER:
        holder = None  # with the consumer: no personal data here
    new_parent = parent if step is Step.PACK else None if step is Step.UNPACK else current.parent
    return CodeState(state, holder, new_parent, event_id)
