"""Named keypoints of :func:`geometry.procedural.car_mesh`, so keypoint fits can be tested and
demonstrated without the research data.

Coordinates are the procedural car's (canonical frame: z up, front at -y, model units). Names
follow the Pascal3D+ car keypoints; like Pascal3D+'s ``car01_keypoints.json``, ``left`` is the
-x side. Every point lies on the surface of one of the car's parts.
"""

from __future__ import annotations

import numpy as np

_WHEEL_X = 0.235  # outer face of the wheels (axle at +-0.2, half width 0.035)
_WHEEL_Z = -0.09
_FRONT_AXLE_Y, _BACK_AXLE_Y = -0.32, 0.3


def car_keypoints() -> dict[str, np.ndarray]:
    """12 keypoints of the procedural car: wheel centres, front lights, trunk and roof corners."""
    points = {
        "left_front_wheel": (-_WHEEL_X, _FRONT_AXLE_Y, _WHEEL_Z),
        "right_front_wheel": (_WHEEL_X, _FRONT_AXLE_Y, _WHEEL_Z),
        "left_back_wheel": (-_WHEEL_X, _BACK_AXLE_Y, _WHEEL_Z),
        "right_back_wheel": (_WHEEL_X, _BACK_AXLE_Y, _WHEEL_Z),
        "left_front_light": (-0.15, -0.5, 0.0),  # on the body's front face
        "right_front_light": (0.15, -0.5, 0.0),
        "left_back_trunk": (-0.2, 0.44, 0.095),  # back corners of the raised trunk lid
        "right_back_trunk": (0.2, 0.44, 0.095),
        "upper_left_windshield": (-0.19, -0.15, 0.17),  # front corners of the cabin roof
        "upper_right_windshield": (0.19, -0.15, 0.17),
        "upper_left_rearwindow": (-0.19, 0.31, 0.17),  # back corners of the cabin roof
        "upper_right_rearwindow": (0.19, 0.31, 0.17),
    }
    return {name: np.array(xyz, dtype=float) for name, xyz in points.items()}
