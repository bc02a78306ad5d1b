"""A patient's photo with several faces: the largest is the one used (px)."""

from pathlib import Path

import numpy as np

INSIGHTFACE_IMAGES = Path(__import__("insightface").__file__).parent / "data" / "images"


def test_photo_with_a_large_and_a_small_face_uses_the_large_one(tmp_path):
    """insightface's sample face pasted twice on a grey 640 × 400 photo: 160 px wide on the left, 256 px on the
    right. The landmarks used must be the large face's: those of the sample alone, scaled and shifted to it."""
    from PIL import Image

    from facecover.photo import photo_face

    sample = Image.open(INSIGHTFACE_IMAGES / "Tom_Hanks_54745.png").convert("RGB")  # 112 × 112
    photo = Image.new("RGB", (640, 400), (128, 128, 128))
    photo.paste(sample.resize((160, 160), Image.BICUBIC), (40, 120))
    photo.paste(sample.resize((256, 256), Image.BICUBIC), (344, 72))
    photo.save(tmp_path / "two.png")
    notices = []
    face = photo_face(tmp_path / "two.png", notice=notices.append)
    assert face["faces_found"] == 2 and len(notices) == 1 and "2 faces found; using the largest" in notices[0]
    alone = photo_face(INSIGHTFACE_IMAGES / "Tom_Hanks_54745.png")["landmarks"]
    large, small = alone * 256 / 112 + [344, 72], alone * 160 / 112 + [40, 120]
    # measured: the large face's landmarks are 2.6 px at most from where they are expected, the small face's
    # 2.4 px from theirs and 364 px from the large face's
    assert np.abs(face["landmarks"] - large).max() < 6.0
    assert np.abs(face["landmarks"] - small).max() > 100.0
