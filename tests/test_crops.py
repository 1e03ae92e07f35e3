from era_split.plugin.host.crops import plan_crop_box, render_crop
from PIL import Image


def test_full_pad_when_alone():
    box = plan_crop_box((200, 200, 300, 320), [], 1000, 800, 0.5)
    x0, y0, x1, y1 = box
    assert x1 - x0 == y1 - y0 == 240  # max(w, h) * (1 + 2 * pad)
    assert x0 <= 200 and x1 >= 300 and y0 <= 200 and y1 >= 320


def test_pad_shrinks_to_avoid_a_neighbour():
    neighbour = (340, 200, 440, 320)
    box = plan_crop_box((200, 200, 300, 320), [neighbour], 1000, 800, 0.5)
    assert box is not None
    assert box[2] <= neighbour[0]  # stops short of the other face
    assert box[2] - box[0] >= 120  # still holds the whole face


def test_overlapping_faces_are_left_out():
    assert plan_crop_box((200, 200, 300, 320), [(280, 220, 380, 340)], 1000, 800, 0.5) is None


def test_at_the_edge_the_box_keeps_its_padding_and_stays_centred():
    """Shrinking or shifting the box to stay in the photo made the face fill the
    crop, and the host's detector missed it; the box reaches beyond instead."""
    box = plan_crop_box((0, 0, 100, 120), [], 640, 480, 0.5)
    assert box == (-70, -60, 170, 180)  # 240 px, centred on the face
    box = plan_crop_box((100, 50, 300, 290), [], 640, 300, 0.5)
    assert box[3] - box[1] == 480 and box[1] < 0 and box[3] > 300


def test_beyond_the_photo_is_its_mean_colour():
    photo = Image.new("RGB", (200, 100), (200, 40, 40))
    photo.paste((40, 40, 200), (0, 0, 100, 100))  # half red, half blue: mean (120, 40, 120)
    crop = render_crop(photo, (-100, -50, 100, 150), 200)
    assert crop.size == (200, 200)
    r, g, b = crop.getpixel((10, 10))  # beyond the photo's corner
    assert abs(r - 120) <= 2 and abs(g - 40) <= 2 and abs(b - 120) <= 2
    assert crop.getpixel((150, 100)) == (40, 40, 200)  # inside: the photo itself (50, 50)
    inside = render_crop(photo, (0, 0, 100, 100), 50)
    assert inside.getpixel((25, 25)) == (40, 40, 200)
