"""Every exit code a balancer process ends with, named once (the CLI, ``balancer run``, ``balancer lab``).

=====  =================  ===========================================================================
code   name               when
=====  =================  ===========================================================================
0      EXIT_OK            success (a migration: verified on the target)
1      EXIT_FAILED        the operation ran and failed (a migration that did not verify, a drain that
                          is blocked, a request the stored state refuses); ``balancer run`` that could
                          not start (its port or its store)
2      EXIT_INPUT         bad input: config, arguments, snapshot file, an unknown host, VM or id
3      EXIT_UNREACHABLE   a host's libvirtd, the service or the store could not be reached
130    EXIT_INTERRUPTED   stopped with Ctrl-C (128 + SIGINT, as shells report it)
=====  =================  ===========================================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130

__all__ = ["EXIT_FAILED", "EXIT_INPUT", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_UNREACHABLE"]
