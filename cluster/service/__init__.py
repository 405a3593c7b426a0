"""The RabbitMQ link and the plotting service: broker settings, publishing a document,
the plotter's message handling and service loop, and its ledger of figures drawn."""
