//! NAB: streaming detection over NAB CSVs and our implementation of NAB scoring.
