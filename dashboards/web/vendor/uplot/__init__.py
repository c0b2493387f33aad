"""uPlot, vendored from npm (see README.md); a package only so that it ships with finsentry."""
