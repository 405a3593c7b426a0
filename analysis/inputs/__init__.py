"""The inputs of a run: the release catalogue, where its files are, what each file holds
(inspected before any event is read), what makes a file bad, and how the workers read it."""
