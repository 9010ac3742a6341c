"""Face pipeline: MTCNN and Haar on real videos, alignment, mean shapes, main-face tracks."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from vidfer.config import parse_config
from vidfer.errors import ConfigError
from vidfer.faces import (
    FaceConfig,
    FrameFaces,
    align_faces,
    mean_shape,
    mean_shape_template,
    process_faces,
    template_points,
    track_main_face,
)
from vidfer.faces.align import similarity_matrix, transform_points
from vidfer.faces.haar import HaarDetector
from vidfer.faces.keyframes import KeyframeDetector, _flow
from vidfer.faces.mtcnn_nets import candidate_calls, prelu_max_pool
from vidfer.faces.pipeline import track_faces, video_detector
from vidfer.faces.tracks import iou

from helpers import pretrained_mtcnn as mtcnn
from helpers import sample_frames as decode


class Replay:
    """A detector that returns precomputed detections (so the cascade runs once per video)."""

    def __init__(self, faces: list[FrameFaces]) -> None:
        self.faces = faces

    def detect(self, frames: np.ndarray) -> list[FrameFaces]:
        assert len(frames) == len(self.faces)
        return self.faces


@pytest.fixture(scope="module")
def carphone_faces() -> list[FrameFaces]:
    return mtcnn().detect(decode("carphone"))


# --- MTCNN on real video -------------------------------------------------------------------


def test_mtcnn_finds_the_carphone_face(carphone_faces: list[FrameFaces]) -> None:
    frames = decode("carphone")
    assert frames.shape == (120, 144, 176, 3)
    found = np.mean([len(f) > 0 for f in carphone_faces])
    assert found >= 0.95
    for faces in carphone_faces:
        if len(faces):
            assert faces.scores[0] > 0.9
            assert faces.landmarks is not None and faces.landmarks.shape == (len(faces), 5, 2)
            x1, y1, x2, y2 = faces.boxes[0]
            assert 30 < x2 - x1 < 100 and 30 < y2 - y1 < 100  # the man's face is ~50 px wide


def test_mtcnn_landmarks_inside_boxes_in_facenet_order(carphone_faces) -> None:
    for faces in carphone_faces:
        for box, points in zip(faces.boxes, faces.landmarks, strict=True):
            assert np.all(points[:, 0] >= box[0]) and np.all(points[:, 0] <= box[2])
            assert np.all(points[:, 1] >= box[1]) and np.all(points[:, 1] <= box[3])
            left_eye, right_eye, nose, left_mouth, right_mouth = points
            assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
            # The head tilts, so compare with the eye and mouth midpoints.
            assert (left_eye[1] + right_eye[1]) / 2 < nose[1] < (left_mouth[1] + right_mouth[1]) / 2


def test_mtcnn_handles_frames_without_faces() -> None:
    blank = np.zeros((3, 60, 80, 3), np.uint8)
    faces = mtcnn().detect(blank)
    assert len(faces) == 3 and all(len(f) == 0 for f in faces)
    assert faces[0].landmarks is not None and faces[0].landmarks.shape == (0, 5, 2)


def test_bikes_is_no_face_video() -> None:
    frames = decode("bikes")[::10]  # 25 of the 250 frames keep the test fast
    result = process_faces(frames, FaceConfig())
    found = [r["status"] == "ok" for r in result.frames]
    assert np.mean(found) < 0.5  # a cyclist's face shows in a few frames only
    assert result.status == "no_face"
    assert result.crops.shape == (0, 112, 112, 3) and len(result.kept) == 0
    assert len(result.frames) == 25


# --- alignment ---------------------------------------------------------------------------


def test_aligned_carphone_eyes_land_on_the_template_eye_line(carphone_faces) -> None:
    frames = decode("carphone")
    cfg = FaceConfig(size=112, margin=0.1)
    result = process_faces(frames, cfg, detector=Replay(carphone_faces))
    assert result.status == "ok" and result.crops.shape == (120, 112, 112, 3)
    template = template_points(cfg.size, cfg.margin)
    eye_line = template[:2, 1].mean()

    # The detector's eyes mapped by the returned matrices.
    landmarks = np.array([result.frames[i]["landmarks"] for i in result.kept])  # (N, 5, 2)
    mapped = transform_points(landmarks, result.matrices)  # (N, 5, 2)
    assert np.abs(mapped[:, :2, 1] - eye_line).mean() < 3.0

    # Independent check: detect the eyes again on the aligned crops.
    again = mtcnn().detect(result.crops)
    eyes = np.array([f.landmarks[0, :2] for f in again if len(f)])  # (M, 2, 2)
    assert len(eyes) >= 0.95 * len(result.crops)
    assert np.abs(eyes[:, :, 1] - eye_line).mean() < 3.0
    assert np.abs(eyes - template[:2]).mean() < 3.0


def test_gray_equalized_crops_for_fer(carphone_faces) -> None:
    frames = decode("carphone")[:10]
    cfg = FaceConfig(size=64, grayscale=True, equalize=True, eyes_only=True)
    result = process_faces(frames, cfg, detector=Replay(carphone_faces[:10]))
    assert result.crops.shape == (10, 64, 64, 1) and result.crops.dtype == np.uint8
    assert result.crops.min() == 0 and result.crops.max() == 255  # equalised
    json.dumps(result.to_json())  # the records are JSON-able


def test_similarity_alignment_recovers_a_known_transform() -> None:
    template = template_points(96, 0.05)
    angle, scale, shift = 0.3, 1.7, np.array([40.0, 25.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = template @ rot.T + shift  # the template seen in a frame, rotated and scaled
    frames = np.zeros((2, 240, 320, 3), np.uint8)
    for eyes_only in (False, True):
        aligned = align_faces(
            frames, np.stack([landmarks, landmarks]), size=96, margin=0.05, eyes_only=eyes_only
        )
        assert aligned.crops.shape == (2, 96, 96, 3)
        mapped = transform_points(landmarks, aligned.matrices[0].astype(np.float64))
        np.testing.assert_allclose(mapped, template, atol=1e-2)


def test_alignment_falls_back_to_the_box_without_landmarks() -> None:
    frames = np.zeros((1, 100, 100, 3), np.uint8)
    frames[0, 20:60, 30:70] = 255
    landmarks = np.full((1, 2, 2), np.nan, np.float32)
    boxes = np.array([[30, 20, 70, 60]], np.float32)
    aligned = align_faces(frames, landmarks, boxes=boxes, size=40, margin=0.0)
    assert aligned.crops[0].min() == 255  # the box fills the crop exactly


def test_mean_shape_and_its_template() -> None:
    rng = np.random.default_rng(0)
    base = template_points(112)
    shapes = []
    for _ in range(50):
        angle, scale = rng.uniform(-0.3, 0.3), rng.uniform(0.5, 2.0)
        c, s = np.cos(angle), np.sin(angle)
        shapes.append(base @ (scale * np.array([[c, -s], [s, c]])).T + rng.uniform(0, 200, 2))
    mean = mean_shape(shapes)
    assert mean.shape == (5, 2)
    np.testing.assert_allclose(mean.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(np.sqrt((mean**2).sum(axis=1).mean()), 1, atol=1e-5)
    placed = mean_shape_template(mean, size=112, margin=0.0)
    # Random rotations average out: the placed mean shape is the template again.
    np.testing.assert_allclose(placed, base, atol=1.5)
    # A template usable by the pipeline (frozen config needs tuples).
    FaceConfig(template=tuple(map(tuple, placed.tolist())))
    matrix = similarity_matrix(mean, placed)
    assert matrix.shape == (2, 3)


# --- Haar ----------------------------------------------------------------------------------


def test_haar_finds_the_carphone_face_in_most_frames(carphone_faces) -> None:
    frames = decode("carphone")[::4]  # 30 frames
    faces = HaarDetector().detect(frames)
    hits = [f for f in faces if len(f)]
    assert len(hits) > 0.5 * len(frames)
    assert all(f.landmarks is not None and f.landmarks.shape == (len(f), 2, 2) for f in faces)
    # Where both detectors found the eyes they agree to a few pixels.
    gaps = [
        np.abs(h.landmarks[0] - m.landmarks[0, :2]).max()
        for h, m in zip(faces, carphone_faces[::4], strict=True)
        if len(h) and len(m) and not np.isnan(h.landmarks[0]).any()
    ]
    assert len(gaps) > 0.4 * len(frames) and np.median(gaps) < 5.0


def test_haar_pipeline_uses_eyes_or_box(carphone_faces) -> None:
    cfg = FaceConfig(detector="haar", min_face_fraction=0.3)
    result = process_faces(decode("carphone")[::8], cfg)
    assert result.status == "ok" and len(result.kept) == result.crops.shape[0] > 0


# --- main-face tracks ----------------------------------------------------------------------


def _faces(*boxes: tuple[float, float, float, float], score: float = 0.99) -> FrameFaces:
    b = np.array(boxes, np.float32).reshape(-1, 4)
    centres = (b[:, :2] + b[:, 2:]) / 2  # (n, 2)
    landmarks = np.repeat(centres[:, None, :], 5, axis=1)  # (n, 5, 2): a point per landmark
    return FrameFaces(b, np.full(len(b), score, np.float32), landmarks)


MAIN = (100.0, 100.0, 160.0, 160.0)  # the main face, 60 px
PASSER = (300.0, 80.0, 350.0, 130.0)  # a smaller face far away


def test_track_keeps_the_main_face_when_a_passer_by_appears() -> None:
    faces = [_faces((100 + 2 * t, 100, 160 + 2 * t, 160)) for t in range(10)]
    for t in (4, 5, 6, 7):
        faces[t] = _faces(*faces[t].boxes.tolist(), PASSER)
    faces[5] = _faces(PASSER)  # the main face is missed while the passer-by is there
    faces[6] = _faces(PASSER, (110, 100, 170, 160))  # passer-by listed first
    track = track_main_face(faces)
    assert track.status[5] == "missing"
    assert all(track.status[t] == "ok" for t in range(10) if t != 5)
    assert all(track.boxes[t, 0] < 200 for t in range(10) if t != 5)  # never the passer-by
    np.testing.assert_array_equal(track.kept, [0, 1, 2, 3, 4, 6, 7, 8, 9])
    assert track.found_fraction == pytest.approx(0.9)


def test_track_starts_from_the_largest_confident_face() -> None:
    big_but_unsure = (0.0, 0.0, 90.0, 90.0)
    faces = [_faces(MAIN) for _ in range(4)]
    faces[2] = FrameFaces(
        np.array([big_but_unsure, MAIN], np.float32),
        np.array([0.5, 0.99], np.float32),
        np.zeros((2, 5, 2), np.float32),
    )
    track = track_main_face(faces, min_score=0.9)
    np.testing.assert_allclose(track.boxes, np.tile(MAIN, (4, 1)))


def test_missing_frames_drop_or_interpolate() -> None:
    faces = [_faces((100 + 10 * t, 100, 160 + 10 * t, 160)) for t in range(6)]
    faces[0] = FrameFaces.empty(5)
    faces[2] = FrameFaces.empty(5)
    faces[3] = FrameFaces.empty(5)
    dropped = track_main_face(faces, missing="drop")
    assert dropped.status == ("missing", "ok", "missing", "missing", "ok", "ok")
    assert np.isnan(dropped.boxes[2]).all()
    filled = track_main_face(faces, missing="interpolate")
    assert filled.status == ("missing", "ok", "interpolated", "interpolated", "ok", "ok")
    np.testing.assert_allclose(filled.boxes[2], [120, 100, 180, 160])
    np.testing.assert_allclose(filled.landmarks[3], np.tile([160.0, 130.0], (5, 1)))
    assert np.isnan(filled.scores[2]) and filled.found_fraction == pytest.approx(0.5)
    np.testing.assert_array_equal(filled.kept, [1, 2, 3, 4, 5])


def test_track_is_reacquired_after_a_long_gap() -> None:
    faces = [_faces(MAIN)] * 3 + [FrameFaces.empty(5)] * 4 + [_faces(PASSER)] * 3
    track = track_main_face(faces, max_gap=2, missing="interpolate")
    assert track.status == ("ok",) * 3 + ("missing",) * 4 + ("ok",) * 3
    np.testing.assert_allclose(track.boxes[-1], PASSER)
    short = track_main_face(faces, max_gap=10)
    assert short.status[-3:] == ("missing",) * 3  # low IoU and within the gap: not linked


def test_empty_video_and_no_detection() -> None:
    assert len(track_main_face([])) == 0
    track = track_main_face([FrameFaces.empty(None)] * 3)
    assert track.status == ("missing",) * 3 and track.landmarks is None
    blank = np.zeros((3, 32, 32, 3), np.uint8)
    result = process_faces(blank, detector=Replay([FrameFaces.empty(5)] * 3))
    assert result.status == "no_face"


def test_face_config_errors_name_the_option() -> None:
    def prepare(**faces: object) -> None:
        parse_config({"data": {"manifest": "m.csv", "prepare": {"faces": faces}}}, source="c")

    with pytest.raises(ConfigError, match=r"'data.prepare.faces'.*faces\.margin"):
        prepare(margin=0.7)
    with pytest.raises(ConfigError, match=r"'data.prepare.faces'.*faces\.detector"):
        prepare(detector="dlib")
    with pytest.raises(ConfigError, match=r"'data.prepare.faces'.*faces\.missing"):
        prepare(missing="keep")
    with pytest.raises(ConfigError, match=r"'data.prepare.faces'.*faces\.sise: Extra inputs"):
        prepare(sise=64)
    with pytest.raises(ConfigError, match=r"'data.prepare.faces'.*faces\.detect_every"):
        prepare(detect_every=0)
    assert FaceConfig().to_dict()["size"] == 112


# --- batched MTCNN, and detect less, track more ----------------------------------------------


def _same_faces(a: list[FrameFaces], b: list[FrameFaces], atol: float) -> None:
    assert [len(f) for f in a] == [len(f) for f in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.boxes, y.boxes, atol=atol)
        np.testing.assert_allclose(x.landmarks, y.landmarks, atol=atol)
        np.testing.assert_allclose(x.scores, y.scores, atol=1e-4)


def test_mtcnn_batch_gives_the_frame_by_frame_faces(carphone_faces) -> None:
    frames = decode("carphone")[::12]  # 10 frames
    one_by_one = [mtcnn().detect(frames[i : i + 1])[0] for i in range(len(frames))]
    _same_faces(one_by_one, carphone_faces[::12], atol=1e-3)  # the fixture: batches of 32
    bikes = decode("bikes")[[32, 120]]  # the cyclist's face, in two frames of 640x272
    _same_faces(
        [mtcnn().detect(bikes[i : i + 1])[0] for i in range(2)], mtcnn().detect(bikes), 1e-3
    )


def test_candidate_calls_are_bounded_and_give_one_calls_outputs() -> None:
    import torch

    net = mtcnn().onet
    sizes: set[int] = set()
    for count in (1, 3, 128, 300):
        crops = torch.rand(count, 3, 48, 48) * 2 - 1  # (K, 3, 48, 48) normalised pixels
        crops = crops.contiguous(memory_format=torch.channels_last)
        hook = net.register_forward_hook(lambda _m, inputs, _o: sizes.add(len(inputs[0])))
        with torch.inference_mode():
            chunked = candidate_calls(net, crops)
        hook.remove()
        with torch.inference_mode():
            whole = net(crops)
        for a, b in zip(chunked, whole, strict=True):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # 3 -> 4 (padded); 300 -> 128 + 128 + 32 + 8 + 4 (in full calls, none padded): few
    # shapes, none over 128.
    assert sizes == {1, 4, 8, 32, 128}


def test_prelu_max_pool_is_prelu_then_max_pool_exactly() -> None:
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(0)
    weight = torch.tensor([-1.3, -0.2, 0.0, 0.4, 1.0, 1.7])  # slopes of both signs, and over 1
    for shape in [(2, 6, 9, 14), (3, 6, 10, 7), (1, 6, 1, 1), (2, 6, 2, 3)]:  # odd and even
        x = torch.randn(*shape, generator=generator).contiguous(memory_format=torch.channels_last)
        x[0, :, 0, 0] = 0.0  # ties at the kink
        expected = F.max_pool2d(F.prelu(x, weight), 2, 2, ceil_mode=True)
        got = prelu_max_pool(x, weight)
        assert torch.equal(got, expected)
        assert got.is_contiguous(memory_format=torch.channels_last)


def test_hd_frames_are_made_float_a_few_at_a_time() -> None:
    detector = mtcnn()
    hd = np.zeros((5, 720, 1280, 3), np.uint8)  # 2^21 pixels hold 2 such frames
    assert [s.indices(5) for s in detector._batches(hd)] == [(0, 2, 1), (2, 4, 1), (4, 5, 1)]
    small = np.zeros((40, 144, 176, 3), np.uint8)  # carphone's size: batch_size (32) at once
    assert [s.indices(40) for s in detector._batches(small)] == [(0, 32, 1), (32, 40, 1)]


def test_mtcnn_refine_finds_the_faces_again_in_their_boxes(carphone_faces) -> None:
    frames = decode("carphone")[:10]
    again = mtcnn().refine(frames, [f.boxes for f in carphone_faces[:10]])
    for found, faces in zip(again, carphone_faces[:10], strict=True):
        assert len(found) == 1 and found.scores[0] > 0.9
        assert np.abs(found.landmarks[0] - faces.landmarks[0]).max() < 3.0
    assert all(len(f) == 0 for f in mtcnn().refine(frames[:2], [np.zeros((0, 4))] * 2))
    boxes = [f.boxes for f in carphone_faces[:2]]
    with pytest.raises(ValueError, match=r"frames must be uint8 \(T, H, W, 3\); got float32"):
        mtcnn().refine(frames[:2].astype(np.float32), boxes)


def _main_face_agreement(full: list[FrameFaces], tracked: list[FrameFaces]) -> tuple[int, float]:
    """Frames where only one finds the main face; landmark RMS (frame px) where both do."""
    cfg = FaceConfig()
    a, _ = track_faces(full, cfg)
    b, _ = track_faces(tracked, cfg)
    ok_a, ok_b = np.array(a.status) == "ok", np.array(b.status) == "ok"
    both = ok_a & ok_b
    rms = np.sqrt(((a.landmarks[both] - b.landmarks[both]) ** 2).sum(axis=2).mean())
    return int((ok_a != ok_b).sum()), float(rms)


def test_keyframe_detection_follows_the_full_detection_on_carphone(carphone_faces) -> None:
    frames = decode("carphone")
    detector = KeyframeDetector(mtcnn(), 8)
    tracked = detector.detect(frames)
    assert detector.full_detections < 30  # 15 keyframes, and a few re-detections
    differ, rms = _main_face_agreement(carphone_faces, tracked)
    assert differ == 0 and rms < 1.5
    # Read in chunks, as preparation and `vidfer predict` read, it finds the same.
    chunked = KeyframeDetector(mtcnn(), 8)
    pieces = [chunked.detect(frames[i : i + 25]) for i in range(0, len(frames), 25)]
    differ, rms = _main_face_agreement(tracked, [f for piece in pieces for f in piece])
    assert differ == 0 and rms < 1.0


def test_keyframe_detection_finds_a_face_where_it_appears_and_leaves(carphone_faces) -> None:
    frames = decode("carphone")[:60].copy()
    frames[:11] = 0  # the face appears at frame 11, between keyframes 8 and 16 ...
    frames[45:] = 0  # ... and leaves at frame 45, between keyframes 40 and 48
    detector = KeyframeDetector(mtcnn(), 8)
    found = [len(f) > 0 for f in detector.detect(frames)]
    assert found == [False] * 11 + [True] * 34 + [False] * 15
    # The face fills the frame: O-Net alone carries it, and losing it there takes a full
    # detection of frame 45 on top of the 8 keyframes.
    assert detector.full_detections == 9
    # The same face small in a larger frame is carried by the full cascade around it, which
    # finds there what a full detection finds: losing it there takes no full detection.
    small = np.stack([cv2.resize(f, (88, 72), interpolation=cv2.INTER_AREA) for f in frames])
    canvas = np.zeros((60, 216, 264, 3), np.uint8)
    canvas[:, 72:144, 88:176] = small  # a 27-pixel face
    detector = KeyframeDetector(mtcnn(), 8)
    found = [len(f) > 0 for f in detector.detect(canvas)]
    assert found == [False] * 11 + [True] * 34 + [False] * 15
    assert found == [len(f) > 0 for f in mtcnn().detect(canvas)]
    assert detector.full_detections == 8


def test_pipeline_detects_every_n_frames_by_default(carphone_faces) -> None:
    frames = decode("carphone")
    every_frame = process_faces(frames, FaceConfig(), detector=Replay(carphone_faces))
    default = process_faces(frames, FaceConfig())
    np.testing.assert_array_equal(default.kept, every_frame.kept)
    # The full detection's landmarks land within 1.5 px (RMS) of where they land in its own crops.
    landmarks = np.array([every_frame.frames[i]["landmarks"] for i in default.kept])  # (N, 5, 2)
    shift = transform_points(landmarks, default.matrices) - transform_points(
        landmarks, every_frame.matrices
    )
    assert np.sqrt((shift**2).sum(axis=2).mean()) < 1.5
    # The Haar cascade cannot re-detect inside a box: it detects every frame.
    assert isinstance(video_detector(FaceConfig(detector="haar")), HaarDetector)
    assert isinstance(video_detector(FaceConfig()), KeyframeDetector)
    assert not isinstance(video_detector(FaceConfig(detect_every=1)), KeyframeDetector)


@pytest.mark.slow
def test_keyframe_detection_follows_the_full_detection_on_bikes() -> None:
    frames = decode("bikes")[70:140]  # the cyclist's face, small and fast, in frames 76-136
    full = mtcnn().detect(frames)
    tracked = KeyframeDetector(mtcnn(), 8).detect(frames)
    # Every confident face of the full detection is found, and found only where it is: the two
    # differ only on marginal faces (scores under 0.95, e.g. a face the full detection misses).
    for a, b in zip(full, tracked, strict=True):
        for one, other in ((a, b), (b, a)):
            for box, score in zip(one.boxes, one.scores, strict=True):
                if not len(other) or iou(box, other.boxes).max() < 0.5:
                    assert score < 0.95
    both = [i for i, (a, b) in enumerate(zip(full, tracked, strict=True)) if len(a) and len(b)]
    assert len(both) >= 35
    a = np.stack([full[i].landmarks[0] for i in both])  # (N, 5, 2)
    b = np.stack([tracked[i].landmarks[0] for i in both])
    # The cyclist's face is small (22-25 px): it is carried by the full cascade around it
    # (MTCNN.detect_near), which gives the full detection's own landmarks.
    assert np.sqrt(((a - b) ** 2).sum(axis=2).mean()) < 0.01
    # Frames 76-78 hold a face between keyframes 72 and 80 that the full detection misses in
    # frame 79: following keyframe 80's face backwards looks past that one frame and finds them.
    island = KeyframeDetector(mtcnn(), 8).detect(frames[2:19])  # frames 72-88
    assert [len(f) > 0 for f in island] == [len(f) > 0 for f in full[2:19]]
    assert [len(f) > 0 for f in island[4:11]] == [True] * 3 + [False] + [True] * 3


def test_a_fast_face_is_carried_where_the_flow_of_its_landmarks_fails() -> None:
    # Bikes' frames 32-43 hold a face moving 20-35 px a frame. From frame 35 to 36 the flow of
    # 3 of its 5 landmarks jumps 54 px too far (motion blur); tracked back to frame 35 they
    # land far from where they started, so they are not followed (the box stays where it was,
    # holding the face's centre) and the face is found again.
    frames = decode("bikes")[32:44]
    full = mtcnn().detect(frames)
    assert all(len(f) for f in full)
    grays = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    predicted = _flow(grays[3], grays[4], full[3])[0]  # frame 35 to 36
    centre = (full[4].boxes[0, :2] + full[4].boxes[0, 2:]) / 2
    assert (predicted[:2] <= centre).all() and (centre <= predicted[2:]).all()
    tracked = KeyframeDetector(mtcnn(), 16).detect(frames)  # one full detection, at frame 32
    for a, b in zip(full, tracked, strict=True):
        assert len(b) and iou(a.boxes[0], b.boxes).max() > 0.9
