"""Synthetic CLEVRER-like videos: `scene` draws and simulates scenes, `render` ray casts them, shaded
with the lighting measured on the real frames (`lighting`)."""
from Data.synth.render import Renderer
from Data.synth.scene import Camera, Scene, SceneConfig, SceneObject, sample_scene, simulate

__all__ = ["Camera", "Renderer", "Scene", "SceneConfig", "SceneObject", "sample_scene", "simulate"]
