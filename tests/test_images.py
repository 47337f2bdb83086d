"""Image decoding on what real poster folders contain (no TensorFlow needed)."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from poster_search.embedding.images import INPUT_SIZE, MAX_FILE_BYTES, MAX_PIXELS, ImageError, decode_poster, read_file
from tests.conftest import make_poster


def test_rgb_jpeg_becomes_model_sized_rgb_array(tmp_path):
    poster = decode_poster(make_poster(tmp_path / "p.jpg", seed=1, size=(256, 384)))
    assert poster.pixels.shape == (INPUT_SIZE, INPUT_SIZE, 3)
    assert poster.pixels.dtype == np.uint8  # bytes to the model: its first layer preprocesses
    assert 0 <= poster.pixels.min() and poster.pixels.max() <= 255
    assert len(poster.sha256) == 64


@pytest.mark.parametrize("mode,suffix", [("L", ".jpg"), ("P", ".png"), ("RGBA", ".png"), ("CMYK", ".jpg"), ("LA", ".png"), ("1", ".png")])
def test_other_modes_are_converted(tmp_path, mode, suffix):
    poster = decode_poster(make_poster(tmp_path / f"p{suffix}", seed=2, mode=mode))
    assert poster.pixels.shape == (INPUT_SIZE, INPUT_SIZE, 3)
    if mode in ("L", "LA", "1"):  # greyscale stays grey: the three channels are equal
        assert np.array_equal(poster.pixels[..., 0], poster.pixels[..., 1])


def test_transparency_is_composited_on_white(tmp_path):
    Image.new("RGBA", (50, 50), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert decode_poster(tmp_path / "clear.png").pixels.min() == 255


def test_16_bit_greyscale_is_scaled_by_its_bit_depth(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (64, 1))
    Image.fromarray(ramp).save(tmp_path / "deep.png")  # mode I;16
    pixels = decode_poster(tmp_path / "deep.png").pixels
    assert pixels.min() == 0 and pixels.max() == 255
    # not stretched to the image's own range: white stays white, a faded poster stays faded
    Image.fromarray(np.full((64, 64), 65535, np.uint16)).save(tmp_path / "white.png")
    assert decode_poster(tmp_path / "white.png").pixels.min() == 255
    faded = np.tile(np.linspace(30000, 40000, 64).astype(np.uint16), (64, 1))
    Image.fromarray(faded).save(tmp_path / "faded.png")
    pixels = decode_poster(tmp_path / "faded.png").pixels.astype(int)
    assert abs(pixels.min() - 30000 / 257) <= 2 and abs(pixels.max() - 40000 / 257) <= 2
    # the same grey in 8 and 16 bits decodes to the same pixels
    Image.fromarray(np.full((64, 64), 100 * 257, np.uint16)).save(tmp_path / "grey16.png")
    Image.fromarray(np.full((64, 64), 100, np.uint8)).save(tmp_path / "grey8.png")
    assert np.array_equal(decode_poster(tmp_path / "grey16.png").pixels, decode_poster(tmp_path / "grey8.png").pixels)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (100, 100), (255, 0, 0))
    image.paste((0, 0, 255), (50, 0, 100, 100))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 3  # "rotate 180" when displayed
    image.save(tmp_path / "rotated.jpg", exif=exif)
    pixels = decode_poster(tmp_path / "rotated.jpg").pixels
    assert pixels[112, 10, 2] > 200 and pixels[112, 10, 0] < 60  # left is now blue


def test_pil_images_and_arrays_are_accepted(tmp_path):
    from_file = decode_poster(make_poster(tmp_path / "p.png", seed=3))
    image = Image.open(tmp_path / "p.png")
    assert np.array_equal(decode_poster(image).pixels, from_file.pixels)
    array = np.asarray(image)
    assert np.array_equal(decode_poster(array).pixels, from_file.pixels)
    assert np.allclose(decode_poster(array / 255.0).pixels, from_file.pixels, atol=1)
    assert decode_poster(array[:, :, :1]).pixels.shape == (INPUT_SIZE, INPUT_SIZE, 3)


def test_same_content_same_hash_other_content_other_hash(tmp_path):
    a = make_poster(tmp_path / "a.jpg", seed=4)
    (tmp_path / "copy.jpg").write_bytes(a.read_bytes())
    b = make_poster(tmp_path / "b.jpg", seed=5)
    assert decode_poster(a).sha256 == decode_poster(tmp_path / "copy.jpg").sha256 != decode_poster(b).sha256


def test_truncated_jpeg_is_a_clear_error(tmp_path):
    data = make_poster(tmp_path / "p.jpg", seed=6, size=(256, 384)).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="corrupt image"):
        decode_poster(tmp_path / "cut.jpg")


@pytest.mark.parametrize(
    "content,message",
    [(b"title,year\nA,1999\n", "not an image"), (b"", "empty file"), (b"\xff\xd8\xff\xe0garbage", "not an image|corrupt")],
)
def test_non_images_are_clear_errors(tmp_path, content, message):
    (tmp_path / "bad.jpg").write_bytes(content)
    with pytest.raises(ImageError, match=message):
        decode_poster(tmp_path / "bad.jpg")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    side = int(MAX_PIXELS**0.5) + 100
    Image.new("1", (side, side)).save(tmp_path / "bomb.png")  # a few KB on disk, 64+ MP decoded
    assert (tmp_path / "bomb.png").stat().st_size < 100_000
    with pytest.raises(ImageError, match="limit|too large"):
        decode_poster(tmp_path / "bomb.png")


def test_missing_file_folder_and_wrong_type(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        decode_poster(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="folder"):
        decode_poster(tmp_path)
    (tmp_path / "x.jpg").mkdir()
    with pytest.raises(ImageError, match="x.jpg: is a folder, not an image"):
        decode_poster(tmp_path / "x.jpg")
    with pytest.raises(ImageError, match="cannot use"):
        decode_poster(42)
    with pytest.raises(ImageError, match="array"):
        decode_poster(np.zeros((4, 4, 2)))


@pytest.mark.timeout(30)  # a guard that breaks hangs on the FIFO: then this fails instead of hanging the suite
def test_only_regular_files_are_read_a_fifo_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")  # nobody writes to it: opening it for reading would block
    with pytest.raises(ImageError, match="not a regular file \\(a FIFO\\)"):
        decode_poster(tmp_path / "pipe.jpg")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero on this system")
def test_dev_zero_is_refused_without_reading_it():
    with pytest.raises(ImageError, match="not a regular file \\(a character device\\)"):
        decode_poster("/dev/zero")


def test_files_over_the_size_limit_are_refused_before_reading(tmp_path):
    with open(tmp_path / "huge.jpg", "wb") as f:  # sparse: no disk space used
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ImageError, match="over the 128 MB limit"):
        decode_poster(tmp_path / "huge.jpg")
    path = make_poster(tmp_path / "small.jpg", seed=1)
    with pytest.raises(ImageError, match="limit"):
        read_file(path, limit=100)


def _broken_exif_jpeg(path: Path) -> Path:
    """A JPEG whose EXIF orientation entry has a corrupt type field: Pillow raises struct.error on it."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Canon"
    buffer = io.BytesIO()
    Image.new("RGB", (64, 96), (200, 10, 10)).save(buffer, "JPEG", exif=exif)
    data = bytearray(buffer.getvalue())
    data[data.find(b"Exif") + 17] = 0
    path.write_bytes(bytes(data))
    return path


def test_any_exception_while_decoding_is_an_image_error_of_one_line(tmp_path):
    path = _broken_exif_jpeg(tmp_path / "exif.jpg")
    with pytest.raises(Exception) as raw:  # what Pillow itself does with it: not an OSError/ValueError
        ImageOps.exif_transpose(Image.open(path))
    assert type(raw.value).__name__ == "error"  # struct.error
    with pytest.raises(ImageError, match=r"exif.jpg: corrupt image \(error: ") as caught:
        decode_poster(path)
    assert "\n" not in str(caught.value)


def test_long_names_are_cut_in_messages(tmp_path):
    with pytest.raises(ImageError) as caught:
        decode_poster(tmp_path / ("a" * 300 + ".jpg"))  # over the file system's 255-character name limit
    assert len(str(caught.value)) < 300 and "File name too long" in str(caught.value)
