"""One router per resource. None imports another: shared parameters are inspector_ui.params',
error answers inspector_ui.problems'."""
