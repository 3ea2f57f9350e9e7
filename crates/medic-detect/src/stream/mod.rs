//! Streaming detectors (rolling z-score, MAD, EWMA, CUSUM, trend), O(1) per sample.
