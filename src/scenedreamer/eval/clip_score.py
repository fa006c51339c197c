"""CLIP score: how well rendered frames match the prompt (Hessel et al. 2021, "CLIPScore";
the text-image agreement metric of Text2NeRF and 3D-SceneDreamer's comparison tables).

score = 100 * max(cos(image embedding, text embedding), 0), the torchmetrics convention (the
CLIPScore paper's w = 2.5 rescaling is a constant factor and is not applied). Higher is better.
The network loads through ``priors.loading.load_clip`` (the one weight-loading module); when the
weights are absent the metric is *unavailable* with the reason, never a number.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import MissingWeightsError, UserInputError
from ..priors.loading import LoadedClip, ModelLoadConfig, load_clip


@dataclass(frozen=True)
class ClipScorer:
    """A loaded CLIP model that scores (H, W, 3) images in [0, 1] against a text."""

    clip: LoadedClip

    @property
    def name(self) -> str:
        """The model's display name (preset name, hub id or folder)."""
        return self.clip.source.display_name

    def _pixels(self, images: Tensor) -> Tensor:
        """(B, H, W, 3) in [0, 1] -> (B, 3, S, S) normalised: shortest side resized to S
        (bicubic, antialiased), centre crop, CLIP mean/std; on the model's device and dtype."""
        model = self.clip.model
        size = self.clip.image_size
        x = images.permute(0, 3, 1, 2).float()
        h, w = x.shape[-2:]
        scale = size / min(h, w)
        new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
        x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)
        top, left = (new_h - size) // 2, (new_w - size) // 2
        x = x[..., top:top + size, left:left + size].clamp(0, 1)
        mean = torch.tensor(self.clip.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.clip.std).view(1, 3, 1, 1)
        x = (x - mean) / std
        param = next(model.parameters())
        return x.to(device=param.device, dtype=param.dtype)

    @torch.no_grad()
    def scores(self, images: Tensor, text: str, batch_size: int = 16) -> list[float]:
        """CLIP score (0-100, higher is better) of each image (B, H, W, 3) in [0, 1] against
        ``text`` (truncated to the tokenizer's maximum length, as CLIP was trained)."""
        model, tok = self.clip.model, self.clip.tokenizer
        param = next(model.parameters())
        ids = tok([text], padding="max_length", truncation=True, max_length=tok.model_max_length,
                  return_tensors="pt")
        text_emb = model.get_text_features(input_ids=ids["input_ids"].to(param.device),
                                           attention_mask=ids["attention_mask"].to(param.device))
        text_emb = _embedding(text_emb)
        out: list[float] = []
        for start in range(0, len(images), batch_size):
            img_emb = _embedding(model.get_image_features(pixel_values=self._pixels(images[start:start + batch_size])))
            cos = F.cosine_similarity(img_emb.float(), text_emb.float(), dim=-1)
            out.extend((100.0 * cos.clamp(min=0)).tolist())
        return out


def _embedding(features) -> Tensor:
    """transformers 5 returns a model output from get_*_features; older ones a tensor."""
    if isinstance(features, Tensor):
        return features
    pooled = getattr(features, "pooler_output", None)
    return pooled if pooled is not None else features[0]


def load_clip_scorer(ref: str, load_config: ModelLoadConfig) -> tuple[ClipScorer | None, str]:
    """(scorer, "") when the CLIP weights load; (None, reason) when they are absent or unusable,
    so that the report says "unavailable: reason" instead of a number."""
    try:
        return ClipScorer(load_clip(ref, load_config)), ""
    except (MissingWeightsError, UserInputError) as err:
        return None, str(err)
