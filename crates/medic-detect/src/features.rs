//! The one feature path: from a window of samples to a fixed, named feature vector.
