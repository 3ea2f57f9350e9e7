//! Isolation forest (Liu, Ting & Zhou 2008) with flat node arrays for scoring.
