"""The outbox's dispatch: claim due rows with a lease; send; record; reconcile the unknown.

Rows are enqueued in the caller's transaction by `core.outbox`; this package sends them.

Statuses of an outbox row:

    pending ──claim──> policy ──drop──> dropped (the reason on the row, its message, its step)
       ^                  │ └──hold──> pending (not_before = until; no try spent)
       │                  │ send now
       │                  v
       │               sending ──success──> sent
       │                  │ ├──transient (attempts left)──> pending (not_before = now + backoff)
       │                  │ ├──not yet (a vendor's hours, or not handed over in the send window)
       │                  │ │        ──> pending (not_before = then; no try spent)
       │                  │ ├──transient (no attempts left), permanent──> dead
       │                  │ └──outcome unknown──> unknown
       │                  └──lease expired (crashed or stuck sender)──> unknown
       │                                                                  │
       └──── lookup: not found and the lease is over (attempts left) ─────┤
                                               lookup: found ──> sent  <──┘
                                               not found, no attempts left ──> dead
                           cannot tell, or the lookup failing past its give-up ──> dead
    pending / unknown ──cancel()──> cancelled;  dead ──requeue()──> pending

A row is never sent again while it might already have gone out: an unknown outcome (and
a lease that ran out mid-send) is first put to the provider's `lookup`, and only when that
cannot find it after the lease is over does the row go back to `pending` — which spends
an attempt, so `max_attempts` bounds resends too. A lookup that failed (an error, a
timeout, a search cut short) is no "not found": it is asked again at each recheck, and
after `lookup_give_up_seconds` the row is dead as "cannot tell", for the owner to send
again or not. For an `unknown` row `lease_until` is that "resend not before" deadline and
`lease_owner` the instance checking it.

Rows are claimed per provider, each only as many as that provider sends in a second at its
rate (`Dispatcher.claim_limit`) and only once its rate lets them go at once; each send()
call has its own time limit, and a row not handed to its vendor within the first half of
the lease (`send_window`) goes back to `pending` with no try spent — never `unknown`.

A row whose payload has photo `attachments` (an owner's photo reply) gets its first photo
through the `PhotoResolver` the Dispatcher was given (`build_outgoing` decides how: as the
message's picture, or as a link in the text) — so this package never touches files or
configuration.

Every result is recorded with `WHERE id = :id AND lease_owner = :me AND status = :was`, so a
sender whose lease was taken over cannot overwrite what the new owner recorded.

Every claimed row is put to the send-time policy (`scheduler.policy.decide`) in the claim's
own unit, before it goes: consent, complaints and the clock may have changed since it was
enqueued, and a row that is retried or resent is asked again.

The stages, one module each, in the order a tick runs them:

    reconcile.py   ask providers about open outcomes (`Reconciler`), before any resend
    claims.py      the lease statements: claim due rows per provider, take open ones
    screening.py   the send-time policy on each claimed row: send, hold or drop it
    outgoing.py    what a claimed row becomes for its provider (`build_outgoing`, photos)
    sending.py     hand them to the vendors in the send window, retry blips (`Courier`)
    records.py     what an outcome means for the row, written as the lease owner (`Ledger`)
    dispatcher.py  the `Dispatcher` that runs them on each tick, its counters and stats
"""

from scheduler.dispatch.dispatcher import Dispatcher

__all__ = ["Dispatcher"]
