"""The worker: takes jobs from the `jobs` stream and runs them to an end state.

One unit per job, so each can be read (and tested) alone:

- `app`: `Worker` (one job from stream entry to stored end state) and `open_worker` (wiring);
- `consumer`: slots, reading and reclaiming entries, the worker's registration, drain on stop;
- `lease`: a running job's heartbeat and its hand-back to another worker;
- `job`: execute one job (workspace, checkout, `ilab` or precheck, outputs);
- `ilab`: run `ilab data generate` with its log streamed into progress;
- `reporting`: check-run updates, the final report and its one comment;
- `uploads`: artifacts and their index page;
- `redis_calls`: the Redis retry policies (record an outcome; consume through an outage);
- `deps`: what the units share (`WorkerDeps`) and the ports tests replace.
"""
