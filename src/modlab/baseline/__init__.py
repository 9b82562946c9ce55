"""Non-transformer baselines scored and written exactly like a training run (`modlab baseline ...`)."""
