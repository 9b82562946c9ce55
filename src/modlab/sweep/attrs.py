"""Names of the attributes the sweep stores on Optuna trials (kept import-light: the sweeper reads them too)."""

# user attrs: visible in optuna-dashboard
EPOCHS = "epochs"  # training epochs the trial ran (set by the pruning callback after each validation)
PRUNED_AT = "pruned_at_epoch"  # set by the job when its pruner stops it; the sweeper then records PRUNED
RUN_DIR = "run_dir"  # the trial's Hydra output directory
FAIL_KIND = "fail_kind"  # error | died | interrupted | surplus
ERROR = "error"  # one line saying why the trial failed
FOLD_VALUES = "fold_values"  # cross-validated trials: the objective value(s) of each fold, in fold order
FOLD_STD = "fold_std"  # ... and their sample standard deviation per objective (ddof=1)
PRUNED_AFTER_FOLD = "pruned_after_fold"  # the fold after which the pruner stopped a cross-validated trial
JOB_PID = "job_pid"  # host:pid of the process that trained the trial

# system attrs
WORKER = "modlab:worker"  # {"host", "pid", "started"} of the sweeper that owns the trial
RETRY_OF = "modlab:retry_of"  # number of the trial this one repeats
STALE_RETRIES = "modlab:stale_retries"  # how many times this point was re-queued after its worker died
