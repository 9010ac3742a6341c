"""The ``frames`` (frame-feature pipelines) and ``sparse_ae`` (Baccouche et al.) sections."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    model_validator,
)

from vidfer.config.base import Section


class ExtractorConfig(Section):
    """One source of per-frame (or per-clip) features for a frame-feature pipeline.

    Exactly one of ``cnn`` (a frame CNN by name, e.g. the FER2013-pretrained
    ``mini_xception``), ``frame_run`` (a ``vidfer train-frames`` run folder), ``video_run``
    (a ``vidfer train`` run of a 3D model, e.g. C3D: its backbone features per time step) or
    ``audio: is10`` (the video file's sound: openSMILE's 1582 IS10 paralinguistic features, one
    step per video; videos without sound are a missing modality).

    Attributes:
        cnn: A frame CNN by name (:data:`~vidfer.models.frame_cnns.FRAME_CNNS`).
        params: Parameters of ``cnn``'s builder.
        frame_run: A ``vidfer train-frames`` run folder; relative to the config's folder.
        video_run: A ``vidfer train`` run of a 3D model; relative to the config's folder.
        audio: ``is10``: openSMILE's INTERSPEECH 2010 functionals of the video's sound.
        layer: Frame CNN layer whose output is the feature (its ``feature_layers`` names, e.g.
            ``conv2``, ``fc6``, ``features``, ``logits``); ignored for ``video_run``.
        spatial: ``avg`` averages a convolutional map over space, ``flatten`` keeps it whole
            (Kahou's IRNN input: the second conv block after pooling).
        batch_size: Frames per forward pass.
    """

    cnn: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    frame_run: Path | None = None
    video_run: Path | None = None
    audio: Literal["is10"] | None = None
    layer: str = "features"
    spatial: Literal["avg", "flatten"] = "avg"
    batch_size: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> ExtractorConfig:
        sources = (self.cnn, self.frame_run, self.video_run, self.audio)
        if sum(v is not None for v in sources) != 1:
            raise ValueError("give exactly one of cnn, frame_run, video_run or audio")
        return self


class ClassifierConfig(Section):
    """The video classifier over frame features.

    Names: ``average`` (mean of the per-frame class probabilities of a ``logits`` extractor,
    nothing learned), ``linear_svm`` (one-vs-rest linear SVM), ``rbf_svm`` (one-vs-rest RBF
    SVM) -- both over aggregated features, with C (and gamma) chosen on the validation split
    and probabilities calibrated -- and ``irnn``, ``lstm``, ``bilstm`` (sequence models over the
    per-frame features, trained with the ``optim`` and ``train`` sections).

    Attributes:
        name: One of the names above.
        params: The classifier's options (e.g. ``C`` and ``gamma_scale`` grids of the SVMs,
            ``hidden`` of the recurrent models).
    """

    name: Literal["average", "linear_svm", "rbf_svm", "irnn", "lstm", "bilstm"]
    params: dict[str, Any] = Field(default_factory=dict)


class FramesConfig(Section):
    """A frame-feature pipeline (Kahou et al., Xu et al.) instead of an end-to-end 3D model.

    Attributes:
        extractors: Feature sources; their aggregates (or per-frame features) are concatenated.
        normalise: ``ssr_l2``: signed square root then L2 normalisation of every frame's
            features (Xu), per extractor, before aggregation.
        aggregate: Video vector for the SVMs: ``mean``, ``mean_var`` (Xu) or ``kbin`` (Kahou's
            k-bin average pooling with ``bins`` bins).
        bins: k of ``kbin`` (Kahou: 15).
        pca: SVMs only: project the standardised video vectors on this many principal
            components of the training videos, whitened (Kahou's audio: PCA, then RBF SVM).
        sequence_length: Sequence models only: train on a random ordered subset of this many
            frames per video and epoch (Xu: 128), test on as many evenly spaced frames; None
            uses every frame.
        classifier: The video classifier.
    """

    extractors: list[ExtractorConfig] = Field(min_length=1)
    normalise: Literal["none", "ssr_l2"] = "none"
    aggregate: Literal["mean", "mean_var", "kbin"] = "mean"
    bins: int = Field(15, ge=1)
    pca: int | None = Field(None, ge=1)
    sequence_length: int | None = Field(None, ge=1)
    classifier: ClassifierConfig


class AutoEncoderConfig(Section):
    """Baccouche et al.'s (2012) spatio-temporal sparse auto-encoder, learned without labels.

    It learns from ``patch`` x ``patch`` x ``depth`` patches of the training videos that move
    (motion selection); a video is then encoded block by block, each block a grid of patches.
    :class:`SparseAEConfig` adds how the codes are classified.

    Attributes:
        patch: Spatial size M of a patch (paper: 8).
        depth: Temporal size T of a patch (paper: 3).
        codes: Code size N (paper: 192 on KTH, 128 on GEMEP-FERA).
        eta: eta of the sparsifying logistic, eq. 1 (paper: 0.02).
        beta: beta of the sparsifying logistic, eq. 1 (paper: 1.5).
        shift_search: Search the shift t* in [-M/4, M/4]^2 x [-T/2, T/2] from the second epoch.
        motion_pixel: A pixel moves when its first and last frames in the patch differ by more
            than this (intensities in [0, 1]).
        motion_share: Keep patches whose share of moving pixels exceeds this.
        patches_per_video: At most this many training patches from each training video.
        epochs: Passes over the training patches (online, one patch at a time).
        encoder_lr: Step of the encoder's update towards the optimal code.
        decoder_lr: Step of the decoder's update towards the (shifted) patch.
        code_steps: Steepest-descent steps on the code Z (eq. 4).
        code_lr: Step size of that descent.
        dz: The finite difference dZ of eq. 6.
        frame_size: ``(H, W)``: centre crop of the stored frames (e.g. 54 x 34 on KTH); None
            keeps them whole.
        track: The ``frame_size`` crop follows the motion, block by block, instead of staying
            in the centre (the analogue of the paper's person-centred KTH boxes, without a
            person detector; see :class:`vidfer.features.spacetime_patches.MotionCrop`).
            The auto-encoder still learns from the moving patches of the whole frames.
        block_stride: Frames between consecutive space-time blocks (None: ``depth``, blocks
            side by side).
        grayscale: Gray patches (the paper's); false keeps the three colour channels, for
            data whose classes show in colour only (D = 3 T M M).
        code: What encodes a patch for the classifier once trained: ``linear``, the encoder's
            output Z, the convolution "responses" that the paper's §4.2 concatenates;
            ``sparse``, its fixed-gain sparsifying logistic (each unit fires on about ``eta``
            of the patches, which concatenated over a grid left the BLSTM at chance on the
            synthetic actions: benchmarks/README.md).
    """

    patch: int = Field(8, ge=2)
    depth: int = Field(3, ge=2)
    codes: int = Field(192, ge=1)
    eta: float = Field(0.02, gt=0, lt=1)
    beta: float = Field(1.5, gt=0)
    shift_search: bool = True
    motion_pixel: float = Field(0.1, gt=0, lt=1)
    motion_share: float = Field(0.1, ge=0, lt=1)
    patches_per_video: int = Field(100, ge=1)
    epochs: int = Field(3, ge=1)
    encoder_lr: float = Field(0.001, gt=0)
    decoder_lr: float = Field(0.02, gt=0)
    code_steps: int = Field(10, ge=0)
    code_lr: float = Field(0.02, gt=0)
    dz: float = Field(0.001, gt=0)
    frame_size: tuple[int, int] | None = None
    track: bool = False
    block_stride: int | None = Field(None, ge=1)
    grayscale: bool = True
    code: Literal["sparse", "linear"] = "linear"

    @model_validator(mode="after")
    def _frame_holds_a_patch(self) -> AutoEncoderConfig:
        if self.frame_size is not None and min(self.frame_size) < self.patch:
            raise ValueError(f"frame_size {list(self.frame_size)} is smaller than a patch")
        if self.track and self.frame_size is None:
            raise ValueError("track: true needs the size of the crop it moves, frame_size")
        return self


class SparseAEConfig(AutoEncoderConfig):
    """Baccouche et al. (2012): the sparse auto-encoder, then a BLSTM over its codes.

    Each video becomes one vector per space-time block (the sparse codes of the block's grid of
    patches), classified by a bidirectional LSTM trained with the ``optim`` and ``train``
    sections.

    Attributes:
        pool: How a block's grid of codes becomes one vector: ``none`` concatenates them (the
            paper's, ``G N`` values per step, for person-centred crops where a body part keeps
            its grid cell), ``max`` / ``mean`` pool each code unit over the grid (``N`` values,
            the same whatever the position: for actors that cross the frame).
        hidden: LSTM units per direction (paper: 5).
    """

    pool: Literal["none", "max", "mean"] = "none"
    hidden: int = Field(5, ge=1)


class ActivityConfig(Section):
    """Kahou et al.'s (2015, §4) activity modality: local motion codes, a bag of words, an SVM.

    A synchrony auto-encoder (:mod:`vidfer.models.synchrony_autoencoder`) learns from moving
    ``patch`` x ``patch`` x ``depth`` blocks of the training videos (Kahou: 16 x 16 x 10) and
    encodes every moving grid block of every video; k-means on the training videos' codes makes a
    vocabulary of ``words``; a video is its normalised histogram of words, classified by SVMs
    grid-searched on the validation split.

    Attributes:
        patch: Spatial size of a block (Kahou: 16).
        depth: Frames of a block (Kahou: 10).
        hidden: Hidden (synchrony) units of the auto-encoder.
        components: Whitened values kept per frame of a block (PCA).
        corruption: Share of the whitened inputs zeroed while training (denoising).
        epochs: Passes over the training blocks.
        batch_size: Blocks per Adam step.
        lr: Adam's learning rate.
        motion_pixel: A pixel moves when its first and last frames in the block differ by
            more than this (intensities in [0, 1]).
        motion_share: Training blocks have more than this share of moving pixels.
        patches_per_video: At most this many training blocks from each training video.
        frame_size: ``(H, W)`` centre crop of the stored frames; None keeps them whole.
        block_stride: Frames between consecutive encoded blocks (None: ``depth``).
        grayscale: Gray blocks; false keeps the three colour channels.
        words: Size of the k-means vocabulary (not given by the paper).
        descriptors: At most this many training codes are clustered (drawn at random).
        classifier: ``linear_svm`` or ``rbf_svm`` (``params``: ``C``, ``gamma_scale``).
    """

    patch: int = Field(16, ge=2)
    depth: int = Field(10, ge=2)
    hidden: int = Field(64, ge=1)
    components: int = Field(64, ge=1)
    corruption: float = Field(0.3, ge=0, lt=1)
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.001, gt=0)
    motion_pixel: float = Field(0.1, gt=0, lt=1)
    motion_share: float = Field(0.1, ge=0, lt=1)
    patches_per_video: int = Field(100, ge=1)
    frame_size: tuple[int, int] | None = None
    block_stride: int | None = Field(None, ge=1)
    grayscale: bool = True
    words: int = Field(100, ge=2)
    descriptors: int = Field(50_000, ge=2)
    classifier: ClassifierConfig = ClassifierConfig(name="rbf_svm")

    @model_validator(mode="after")
    def _consistent(self) -> ActivityConfig:
        if self.classifier.name not in ("linear_svm", "rbf_svm"):
            raise ValueError(
                f"classifier {self.classifier.name!r}: the bag of words takes linear_svm or rbf_svm"
            )
        values = (1 if self.grayscale else 3) * self.patch * self.patch
        if self.components > values:
            raise ValueError(f"components {self.components}: a block frame has {values} values")
        if self.frame_size is not None and min(self.frame_size) < self.patch:
            raise ValueError(f"frame_size {list(self.frame_size)} is smaller than a block")
        return self
