"""The learning pipeline: measured benchmark data in, pretrained calibration models and accuracy
reports out. The runtime (budsim.core, the serving CLI commands, the TUI) never imports it.

- `datasets`: loaders of the measured benchmark folder into one normalised table;
- `evaluate`: a measured row -> the case budsim predicts, and predictions joined to measurements;
- `samples`: measured rows -> training samples (physics prediction, features, residual targets);
- `frontend_fit`: fits the front end's fixed latency (budsim.core.frontend) to measured rows;
- `train`: `budsim train`, the residual models written to ``pretrained/``;
- `validate`: `budsim validate`, nested cross-validation and ``docs/accuracy.md``.

It builds on budsim.core (the physics, the calibration's features, forest and store) and needs
pandas, scikit-learn and xgboost, imported by the functions that use them.
"""
