from era_split.plugin.crops import plan_crop_box


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


def test_box_is_shifted_into_the_photo():
    box = plan_crop_box((0, 0, 100, 120), [], 640, 480, 0.5)
    assert box[0] == 0 and box[1] == 0 and box[2] == 240


def test_box_never_exceeds_the_shorter_side_unless_the_face_does():
    box = plan_crop_box((100, 50, 300, 290), [], 640, 300, 0.5)
    assert box[3] - box[1] == 300 and box[1] == 0
