"""Learned calibration of the physics predictions (XGBoost residual models with an 80 % band).

- `features`: the numeric description of a prediction case;
- `forest`: evaluates XGBoost JSON models with numpy (no xgboost at prediction time);
- `store`: finds and loads pretrained and user models, with warnings instead of failures;
- `apply`: `apply_calibration(resolved, workload, pred)`, called by `budsim.core.predict.predict`;
- `user`: `budsim calibrate` on the user's own benchmark results.

The training pipeline that fits the shipped models (`budsim train`, `budsim validate`) is budsim.learn,
which this package never imports. Importing this package loads numpy only; xgboost is imported by
the user-calibration functions that need it.
"""

from .apply import apply_calibration

__all__ = ["apply_calibration"]
