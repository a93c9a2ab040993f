"""Learned calibration of the physics predictions (XGBoost residual models with an 80 % band).

- `features`: the numeric description of a prediction case;
- `forest`: evaluates XGBoost JSON models with numpy (no xgboost at prediction time);
- `store`: finds and loads pretrained and user models, with warnings instead of failures;
- `apply`: `apply_calibration(resolved, workload, pred)`, called by `budsim.core.predict.predict`;
- `frame`, `train`, `validate`: the training pipeline (`budsim train`, `budsim validate`);
- `user`: `budsim calibrate` on the user's own benchmark results.

Importing this package loads numpy only; xgboost, pandas and scikit-learn are imported by the
training, validation and user-calibration functions that need them.
"""

from .apply import apply_calibration

__all__ = ["apply_calibration"]
