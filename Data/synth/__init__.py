"""Synthetic CLEVRER-like videos: `scene` draws and simulates scenes, `render` ray casts them."""
from Data.synth.render import Renderer
from Data.synth.scene import Camera, Scene, SceneConfig, SceneObject, sample_scene, simulate

__all__ = ["Camera", "Renderer", "Scene", "SceneConfig", "SceneObject", "sample_scene", "simulate"]
