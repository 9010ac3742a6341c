"""Small trees in the exact published layouts of today's facial-expression benchmarks (DFEW,
FERV39k, MAFW, CK+, Oulu-CASIA, RAVDESS, CREMA-D): folder and file names, split files and label
codes, with tiny png frames and, where asked, real videos (mp4; CREMA-D's flv)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vidfer.io.writer import write_video

from helpers import moving_square, write_frame_folder


def frames(
    folder: Path, count: int = 4, name: str = "{:05d}.png", direction: int = 0, seed: int = 0
) -> Path:
    """``count`` frames in ``folder``, named by ``name`` from 1 (its extension sets the image
    format): tiny flat grey images, or with ``direction`` +1/-1 a 32-pixel square sliding
    right/left over noise (something a model can learn from)."""
    if direction:
        images = moving_square(direction, count, size=32, seed=seed)  # (T, H, W, 3)
        write_frame_folder(folder, images, [name.format(i) for i in range(1, count + 1)])
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(1, count + 1):
        image = np.full((8, 8, 3), index * 20, np.uint8)
        assert cv2.imwrite(str(folder / name.format(index)), image)
    return folder


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def video(path: Path, direction: int = 1, seed: int = 0) -> Path:
    """A real 12-frame video (its container from the extension: .mp4, .flv)."""
    codec = "flv" if path.suffix == ".flv" else "libx264"
    write_video(path, moving_square(direction, 12, size=32, seed=seed), 10.0, codec=codec)
    return path


def dfew_tree(root: Path) -> Path:
    for clip in (1, 2, 3, 12):
        frames(root / "Clip" / "clip_224x224" / f"{clip:05d}", name=f"{clip:05d}_{{:05d}}.jpg")
    splits = root / "EmoLabel_DataSplit"
    write(splits / "train(single-labeled)" / "set_1.csv", "video_name,label\n1,1\n2,7\n")
    write(splits / "test(single-labeled)" / "set_1.csv", "video_name,label\n3,4\n12,3\n")
    write(splits / "train(single-labeled)" / "set_2.csv", "video_name,label\n3,4\n12,3\n")
    write(splits / "test(single-labeled)" / "set_2.csv", "video_name,label\n1,1\n2,7\n")
    return root


def ferv39k_tree(root: Path) -> Path:
    clips = root / "2_ClipsforFaceCrop"
    for rel in ("Action/Happy/0015", "Action/Sad/0009", "Argue/Angry/0001", "Argue/Fear/0000"):
        frames(clips / rel, name="{:02d}.jpg")
    setups = root / "4_setups" / "All_scenes"
    write(setups / "train_All.csv", "Action/Happy/0015 Happy\nArgue/Angry/0001 Angry\n")
    write(setups / "test_All.csv", "Action/Sad/0009 Sad\n\nArgue/Fear/0000 Fear\n")
    return root


def mafw_tree(root: Path) -> Path:
    names = ("00025", "00028", "00108", "00123")
    for name in names:
        frames(root / "data" / "frames" / name, name="{:03d}.jpg")
        write(root / "data" / "clips" / f"{name}.mp4", "")
    sets = root / "Train & Test Set" / "single" / "no_caption"
    write(sets / "set_1" / "train.txt", "00025.mp4 anger\n00028.mp4 helplessness\n")
    write(sets / "set_1" / "test.txt", "00108.mp4 disappointment\n00123.mp4 neutral\n")
    return root


def ckplus_tree(root: Path) -> Path:
    labelled = {("S005", "001"): 3, ("S010", "002"): 7, ("S011", "004"): 1}
    for subject, number in [*labelled, ("S010", "001")]:  # S010/001 has no emotion file
        frames(
            root / "cohn-kanade-images" / subject / number, 5, f"{subject}_{number}_{{:08d}}.png"
        )
    for (subject, number), code in labelled.items():
        write(
            root / "Emotion" / subject / number / f"{subject}_{number}_00000005_emotion.txt",
            f"   {code:.7e}\n",
        )
    return root


def oulu_tree(root: Path) -> Path:
    for person in ("P001", "P002"):
        for emotion in ("Anger", "Happiness", "Surprise"):
            frames(root / "VL" / "Strong" / person / emotion, 3, "{:03d}.jpeg")
    frames(root / "VL" / "Weak" / "P001" / "Anger", 3, "{:03d}.jpeg")  # not read
    return root


def ravdess_tree(root: Path, actors: tuple[int, ...] = (1, 2), real: bool = False) -> Path:
    """Speech takes of emotions 03 (happy) and 04 (sad), both modalities, and one song take;
    with ``real``, the full-AV files (the rows' paths) are real videos, the rest empty."""
    seed = 0
    for actor in actors:
        for emotion, direction in (("03", 1), ("04", -1)):
            for statement in ("01", "02"):
                for modality in ("01", "02"):
                    name = f"{modality}-01-{emotion}-01-{statement}-01-{actor:02d}.mp4"
                    path = root / f"Actor_{actor:02d}" / name
                    seed += 1
                    real_video = real and modality == "01"
                    video(path, direction, seed) if real_video else write(path, "")
        write(root / f"Actor_{actor:02d}" / f"01-02-05-02-01-02-{actor:02d}.mp4", "")
    write(root / "Audio_Speech_Actors_01-24" / "Actor_01" / "03-01-03-01-01-01-01.wav", "")
    return root


def cremad_tree(root: Path, actors: tuple[int, ...] = (1001, 1002), real: bool = False) -> Path:
    seed = 0
    for actor in actors:
        for emotion, direction in (("HAP", 1), ("SAD", -1)):
            for sentence, level in (("DFA", "XX"), ("IEO", "HI")):
                path = root / "VideoFlash" / f"{actor}_{sentence}_{emotion}_{level}.flv"
                seed += 1
                video(path, direction, seed) if real else write(path, "")
    write(root / "AudioWAV" / "1001_DFA_ANG_XX.wav", "")  # not read
    return root
