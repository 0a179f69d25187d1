"""Running moves: admission under limits, pre-checks, target storage, live block migration, journal.

Public entry points (see each module's docstring)::

    runner.Runner(executor_args, limit_args, hypervisors, store, endpoints,
                  sink=..., snapshot=..., rule_check=...)
        .submit(moves) -> [MigrationRecord]   .wait(ids, timeout) -> [Outcome]   .abort(id)
        .in_flight()   .queued()   and shutdown(grace_seconds, abort=False)
    recovery.recover(store, hypervisors, executor_args, sink=...) -> [MigrationRecord]   # at start-up
    hypervisor.libvirt_factory(endpoints) -> hypervisors    facts.MigrationEndpoint(name, uri, migration_uri)
    events.Progress | StateChanged | Waiting | Finished | Note    (what the sink receives)

Modules: admission, convergence, xmlfacts (pure); hypervisor (the only libvirt I/O); prechecks, backing,
migrate, verify, journal, recovery, runner.
"""
