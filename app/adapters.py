"""Where the service leans on a library's internals: each workaround once, here.

tests/test_adapters.py runs each one against the installed library and fails when the library
changes under it, so an upgrade that breaks one shows up as a failed test, not as a worker that
never stops or a hook that runs on every request.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from flask import Flask
from flask_limiter import Limiter
from rq.worker import BaseWorker


def stop_requested(worker: BaseWorker) -> bool:
    """Whether RQ's worker was asked to stop (SIGTERM, Ctrl-C) rather than having quit on an error.

    RQ 2 notes the request only in a private attribute; its ``work()`` returns the same way in both
    cases, and jobs.worker replaces a worker that quit unasked.
    """
    return worker._shutdown_requested_date is not None


def move_limiter_hooks(
    app: Flask, limiter: Limiter, blueprint: str, wrap_after: Callable[[Any], Any] = lambda hook: hook
) -> int:
    """Take Flask-Limiter's app-wide hooks off every request; its after and teardown hooks go to ``blueprint``.

    Flask-Limiter 4 hooks every request of the app: its before_request alone cost ~40 us a request
    with no limit to check. Only ``blueprint`` is limited, its decorators check by themselves, so
    its before_request hook goes and the hooks that count failures and free the context follow
    the blueprint. The hooks are recognised as the library registers them: methods bound to the
    limiter, or ``partial`` objects whose first argument is it; ``wrap_after`` wraps each after_request
    hook as it moves. Returns how many were moved or dropped.
    """
    hook_lists: tuple[dict[Any, list[Any]], ...] = (
        app.before_request_funcs,
        app.after_request_funcs,
        app.teardown_request_funcs,
    )
    moved = 0
    for hooks in hook_lists:
        mine = [hook for hook in hooks.get(None, []) if _bound_to(hook, limiter)]
        for hook in mine:
            hooks[None].remove(hook)
            if hooks is app.after_request_funcs:
                hooks.setdefault(blueprint, []).append(wrap_after(hook))
            elif hooks is not app.before_request_funcs:
                hooks.setdefault(blueprint, []).append(hook)
        moved += len(mine)
    return moved


def _bound_to(hook: Any, limiter: Limiter) -> bool:
    if isinstance(hook, partial):
        return bool(hook.args) and hook.args[0] is limiter
    return getattr(hook, "__self__", None) is limiter
