"""Economy runner: scenarios, demos and reports."""
