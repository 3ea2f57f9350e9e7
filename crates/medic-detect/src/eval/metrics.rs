//! Ranking and classification metrics: ROC AUC, PR AUC, precision, recall, F1.
