"""Generated archives: ``synth`` (real JPEGs with dates, the demo's and the
tests') and ``truth`` (embedding-level archives with a known answer, their
scores, and the clustering's stress shapes)."""
