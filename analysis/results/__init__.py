"""What a computed run becomes: the event accounting, the histogram document, the yields
table, the figure, the statistical model and its fit, and the files they are written to."""
