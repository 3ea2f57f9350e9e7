//! Standard (mean/std) and robust (median/IQR) scalers.
