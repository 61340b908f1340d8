"""Stand-in of ``modules/call_queue.py``: the global queue lock and ``wrap_queued_call``."""
from __future__ import annotations

import functools
import threading
from collections.abc import Callable

queue_lock = threading.Lock()


def wrap_queued_call(func: Callable) -> Callable:
    @functools.wraps(func)
    def f(*args, **kwargs):
        with queue_lock:
            return func(*args, **kwargs)
    return f


def wrap_gradio_gpu_call(func: Callable, extra_outputs=None) -> Callable:
    return wrap_queued_call(func)
