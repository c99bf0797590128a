"""Photometric shift: weather and lighting applied to the observations only (albumentations).

The photometric condition of the protocol gives each episode one effect. The transform is seeded
with the episode's seed, so the same episode always sees the same weather. The harness applies it
through benchmark.rollout.wrappers.ObservationShift: the simulator state, the teacher and the
metrics are untouched; only what the policy sees changes.
"""

from __future__ import annotations

import albumentations as A

EFFECTS = ("fog", "rain", "shadows", "low_sun", "dark")


def photometric_effect(name: str, seed: int) -> A.Compose:
    """The albumentations transform of one effect, deterministic for a seed."""
    transforms = {
        "fog": A.RandomFog(fog_coef_range=(0.55, 0.75), alpha_coef=0.15, p=1.0),
        "rain": A.RandomRain(slant_range=(-8, 8), drop_length=6, drop_width=1, blur_value=3,
                             brightness_coefficient=0.8, rain_type="drizzle", p=1.0),
        "shadows": A.RandomShadow(shadow_roi=(0, 0.3, 1, 1), num_shadows_limit=(2, 3), shadow_dimension=5,
                                  shadow_intensity_range=(0.4, 0.7), p=1.0),
        "low_sun": A.RandomSunFlare(flare_roi=(0.0, 0.0, 1.0, 0.25), src_radius=70, num_flare_circles_range=(3, 6),
                                    p=1.0),
        "dark": A.RandomBrightnessContrast(brightness_limit=(-0.35, -0.25), contrast_limit=(-0.25, -0.1), p=1.0),
    }
    if name not in transforms:
        raise ValueError(f"unknown photometric effect {name!r}; effects are: {', '.join(EFFECTS)}")
    return A.Compose([transforms[name]], seed=int(seed))
