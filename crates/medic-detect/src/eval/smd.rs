//! SMD: per-machine train/test, F1 with and without point adjustment, HitRate@P%.
