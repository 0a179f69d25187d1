"""Running moves: admission under limits, pre-checks, target storage, live block migration, journal.

Public entry points (see each module's docstring)::

    runner.Runner(executor_args, limit_args, hypervisors, store, endpoints,
                  sink=..., snapshot=..., rule_check=..., registry=...)
        .submit(moves) -> [MigrationRecord]   .wait(ids, timeout) -> [Outcome]   .abort(id)
        .in_flight()   .queued()   .registry   and shutdown(grace_seconds, abort=False)
    recovery.recover(store, hypervisors, executor_args, sink=..., registry=...) -> [MigrationRecord]
    recovery.reconcile(record, journal, hypervisors, executor_args, registry=...) -> MigrationRecord
    artifacts.registry_for(store) -> BackingRegistry   (share one between Runner and recovery)
    hypervisor.libvirt_factory(endpoints) -> hypervisors    facts.MigrationEndpoint(name, uri, migration_uri)
    events.Progress | StateChanged | Waiting | Finished | Note    (what the sink receives)

Modules: admission, convergence, ending, xmlfacts (pure); hypervisor (the only libvirt I/O); prechecks,
backing, artifacts (what moves create on targets), cleanup, migrate, watch, verify, journal, recovery, runner.
"""
