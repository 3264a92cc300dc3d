"""Conversions between camera data (robot_dyn.perception.cameras) and standard ROS messages.

Images, camera info and point clouds, with numpy only: cv_bridge, sensor_msgs_py
(point_cloud2), message_filters and tf2_msgs are not among the PyPI ROS 2 wheels (checked: no
distribution found), so the few conversions needed are written here. They follow the ROS
conventions, so a ROS 2 install's tools (RViz, image_view, rosbag2) read what this publishes.

Topics of one camera `<name>` (see README, 'Perception topics')
--------------------------------------------------------------
``/cameras/<name>/color/image_raw``   sensor_msgs/Image, ``rgb8`` (``bgr8`` accepted as input)
``/cameras/<name>/depth/image_raw``   sensor_msgs/Image, ``32FC1`` z-depth along the optical
                                      axis in metres, NaN where there is no return (REP 118;
                                      ``16UC1`` millimetres with 0 = no return accepted as input)
``/cameras/<name>/mask``              sensor_msgs/Image, ``mono8``: 255 = object, 0 = not
                                      (values >= 128 count as object on input)
``/cameras/<name>/color/camera_info`` sensor_msgs/CameraInfo: K, P = [K | 0], R = I,
                                      ``plumb_bob`` with zero distortion (rectified images)
``/cameras/<name>/pose``              geometry_msgs/TransformStamped, transient local: the pose of
                                      ``<name>_optical_frame`` (x right, y down, z forward, the
                                      OpenCV convention of REP 103's optical frames) in the world
                                      frame; the same transform goes on ``/tf_static`` where
                                      tf2_msgs exists (a ROS 2 install)

All messages of one capture carry the same header.stamp; images and camera info have
header.frame_id ``<name>_optical_frame``.

Errors are ValueError naming the topic (or the caller's label) and the field.
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Pose, TransformStamped
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from robot_dyn.nodes.messages import pose_to_arrays, rotation_to_quaternion, to_stamp
from robot_dyn.perception.cameras import CameraCalibration, CameraFrame, invert_transform

TOOL_LABEL, OBJECT_LABEL = 1, 0
DEPTH_MM = 0.001  # m per unit of a 16UC1 depth image


def optical_frame(camera: str) -> str:
    return f"{camera}_optical_frame"


def camera_topics(camera: str, namespace: str = "/cameras") -> dict:
    """Topic names of one camera: color, depth, mask, info, pose."""
    base = f"{namespace.rstrip('/')}/{camera}"
    return {"color": f"{base}/color/image_raw", "depth": f"{base}/depth/image_raw", "mask": f"{base}/mask",
            "info": f"{base}/color/camera_info", "pose": f"{base}/pose"}


def stamp_ns(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds (exact, for matching stamps)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


# --- images ------------------------------------------------------------------

def _image(array: np.ndarray, encoding: str, stamp: float, frame_id: str) -> Image:
    array = np.ascontiguousarray(array)
    msg = Image()
    msg.header.stamp, msg.header.frame_id = to_stamp(stamp), frame_id
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding, msg.is_bigendian = encoding, 0
    msg.step = int(array.strides[0])
    msg.data = array.tobytes()
    return msg


def color_msg(rgb: np.ndarray, stamp: float, frame_id: str) -> Image:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"color: expected uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    return _image(rgb, "rgb8", stamp, frame_id)


def depth_msg(depth: np.ndarray, stamp: float, frame_id: str) -> Image:
    """float32 metres; pixels <= 0 or non-finite (CameraFrame's 'invalid') are sent as NaN."""
    depth = np.asarray(depth, np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth: expected (H, W), got {depth.shape}")
    out = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(np.nan)).astype("<f4")
    return _image(out, "32FC1", stamp, frame_id)


def mask_msg(mask: np.ndarray, stamp: float, frame_id: str) -> Image:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask: expected (H, W), got {mask.shape}")
    return _image(np.where(mask.astype(bool), 255, 0).astype(np.uint8), "mono8", stamp, frame_id)


def frame_msgs(frame: CameraFrame, stamp: float) -> tuple[Image, Image, Image]:
    """(color, depth, mask) messages of one rendered view, all with the same stamp and frame."""
    fid = optical_frame(frame.name)
    return color_msg(frame.rgb, stamp, fid), depth_msg(frame.depth, stamp, fid), mask_msg(frame.mask, stamp, fid)


_ENCODINGS = {  # encoding -> (numpy dtype, channels)
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "mono8": (np.uint8, 1), "8UC1": (np.uint8, 1),
    "32FC1": (np.float32, 1), "16UC1": (np.uint16, 1), "mono16": (np.uint16, 1),
}


def image_array(msg: Image, where: str = "image", encodings=None) -> np.ndarray:
    """The pixels of an Image as a numpy array (H, W) or (H, W, C), a copy; checks every field."""
    if encodings is not None and msg.encoding not in encodings:
        raise ValueError(f"{where}: encoding: expected {' or '.join(encodings)}, got '{msg.encoding}'")
    if msg.encoding not in _ENCODINGS:
        raise ValueError(f"{where}: encoding: '{msg.encoding}' is not supported (known: {sorted(_ENCODINGS)})")
    dtype, channels = _ENCODINGS[msg.encoding]
    h, w = int(msg.height), int(msg.width)
    if h <= 0 or w <= 0:
        raise ValueError(f"{where}: height/width: the image is empty ({w}x{h})")
    row = w * channels * np.dtype(dtype).itemsize
    if msg.step < row:
        raise ValueError(f"{where}: step: {msg.step} bytes is less than a row of {w} {msg.encoding} pixels ({row})")
    data = np.frombuffer(msg.data, np.uint8)  # bytes or array('B'): no copy
    if data.size != msg.step * h:
        raise ValueError(f"{where}: data: {data.size} bytes, expected step * height = {msg.step * h}")
    rows = data.reshape(h, msg.step)[:, :row]
    pixels = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<"))
    pixels = pixels.astype(dtype).reshape((h, w, channels) if channels > 1 else (h, w))
    return pixels


def color_from_msg(msg: Image, where: str = "color") -> np.ndarray:
    """uint8 RGB (H, W, 3) from an rgb8 or bgr8 image."""
    rgb = image_array(msg, where, ("rgb8", "bgr8"))
    return rgb[..., ::-1].copy() if msg.encoding == "bgr8" else rgb


def depth_from_msg(msg: Image, where: str = "depth") -> np.ndarray:
    """float32 metres (H, W) with 0 = no return (CameraFrame's convention) from 32FC1 m or 16UC1 mm.

    NaN, +-Inf and values <= 0 are 'no return' (REP 118), not errors."""
    depth = image_array(msg, where, ("32FC1", "16UC1"))
    if msg.encoding == "16UC1":
        return depth.astype(np.float32) * np.float32(DEPTH_MM)
    return np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(0.0)).astype(np.float32)


def mask_from_msg(msg: Image, where: str = "mask") -> np.ndarray:
    """bool (H, W) from a mono8 / 8UC1 image: values >= 128 are the object."""
    return image_array(msg, where, ("mono8", "8UC1")) >= 128


# --- camera info and pose ----------------------------------------------------

def camera_info_msg(calibration: CameraCalibration, stamp: float) -> CameraInfo:
    msg = CameraInfo()
    msg.header.stamp, msg.header.frame_id = to_stamp(stamp), optical_frame(calibration.name)
    msg.width, msg.height = int(calibration.width), int(calibration.height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    K = np.asarray(calibration.K, float)
    msg.k = K.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    msg.p = np.hstack([K, np.zeros((3, 1))]).reshape(-1).tolist()
    return msg


def intrinsics_from_msg(msg: CameraInfo, where: str = "camera_info") -> tuple[np.ndarray, int, int]:
    """(K 3x3, width, height). Only rectified (undistorted) pinhole cameras are supported."""
    K = np.asarray(msg.k, float).reshape(3, 3)
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0, 0, 1]):
        raise ValueError(f"{where}: k: expected a finite pinhole matrix with fx, fy > 0 (an uncalibrated camera "
                         f"has K = 0), got {K.reshape(-1).tolist()}")
    if msg.width <= 0 or msg.height <= 0:
        raise ValueError(f"{where}: width/height: must be positive, got {msg.width}x{msg.height}")
    d = np.asarray(msg.d, float)
    if d.size and (not np.all(np.isfinite(d)) or np.any(np.abs(d) > 1e-9)):
        raise ValueError(f"{where}: d: nonzero distortion {d.tolist()} is not supported; publish rectified images "
                         "(image_rect) with zero distortion")
    return K, int(msg.width), int(msg.height)


def camera_pose_msg(calibration: CameraCalibration, stamp: float, world_frame: str = "world") -> TransformStamped:
    """world -> <name>_optical_frame: the optical frame's pose in the world (REP 103 optical axes)."""
    T = calibration.cam_to_world
    msg = TransformStamped()
    msg.header.stamp, msg.header.frame_id = to_stamp(stamp), world_frame
    msg.child_frame_id = optical_frame(calibration.name)
    msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = T[:3, 3].tolist()
    r = msg.transform.rotation
    r.x, r.y, r.z, r.w = (float(v) for v in rotation_to_quaternion(T[:3, :3]))
    return msg


def world_to_cam_from_msg(msg: TransformStamped, world_frame: str = "world", where: str = "pose") -> np.ndarray:
    """4x4 world -> OpenCV camera transform from a world -> optical-frame TransformStamped."""
    if msg.header.frame_id != world_frame:
        raise ValueError(f"{where}: header.frame_id: expected '{world_frame}', got '{msg.header.frame_id}'")
    pose = Pose()
    t = msg.transform.translation
    pose.position.x, pose.position.y, pose.position.z = t.x, t.y, t.z
    pose.orientation = msg.transform.rotation
    try:
        p, R = pose_to_arrays(pose)
    except ValueError as exc:
        raise ValueError(f"{where}: transform: {exc}") from None
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, p
    return invert_transform(T)


def calibration_from_msgs(name: str, info: CameraInfo, world_to_cam: np.ndarray, where: str | None = None) -> CameraCalibration:
    K, width, height = intrinsics_from_msg(info, where or f"{name}/camera_info")
    return CameraCalibration(name, K, np.asarray(world_to_cam, float), width, height)


def frame_from_msgs(name: str, color: Image, depth: Image, mask: Image | None, info: CameraInfo,
                    topics: dict | None = None) -> CameraFrame:
    """One camera's CameraFrame from its messages; every image must match the camera info's size.
    mask None (no mask topic: the caller computes it, e.g. from depth) gives an all-False mask."""
    topics = topics or camera_topics(name)
    rgb = color_from_msg(color, topics["color"])
    d = depth_from_msg(depth, topics["depth"])
    size = (int(info.height), int(info.width))
    m = mask_from_msg(mask, topics["mask"]) if mask is not None else np.zeros(size, bool)
    for key, array in (("color", rgb), ("depth", d), ("mask", m)):
        if array.shape[:2] != size:
            raise ValueError(f"{topics[key]}: height/width: image is {array.shape[1]}x{array.shape[0]}, "
                             f"{topics['info']} says {size[1]}x{size[0]}")
    return CameraFrame(name, rgb, d, m)


# --- point clouds --------------------------------------------------------------

PARTICLE_FIELDS = (("x", 0, PointField.FLOAT32), ("y", 4, PointField.FLOAT32), ("z", 8, PointField.FLOAT32),
                   ("label", 12, PointField.UINT32))
_PARTICLE_DTYPE = np.dtype({"names": ["x", "y", "z", "label"], "formats": ["<f4", "<f4", "<f4", "<u4"],
                            "offsets": [0, 4, 8, 12], "itemsize": 16})


def particles_msg(points: np.ndarray, labels: np.ndarray, stamp: float, frame_id: str = "world") -> PointCloud2:
    """PointCloud2 (unordered, height 1) with fields x, y, z (float32, m) and label (uint32:
    0 object, 1 tool), 16 bytes a point (PCL's PointXYZL layout without its padding)."""
    points = np.asarray(points, float).reshape(-1, 3)
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != points.shape[0]:
        raise ValueError(f"particles: {points.shape[0]} points but {labels.shape[0]} labels")
    if not np.all(np.isfinite(points)):
        raise ValueError("particles: points hold NaN or infinite values")
    data = np.zeros(points.shape[0], _PARTICLE_DTYPE)
    data["x"], data["y"], data["z"], data["label"] = points[:, 0], points[:, 1], points[:, 2], labels
    msg = PointCloud2()
    msg.header.stamp, msg.header.frame_id = to_stamp(stamp), frame_id
    msg.height, msg.width = 1, int(points.shape[0])
    msg.fields = [PointField(name=n, offset=o, datatype=t, count=1) for n, o, t in PARTICLE_FIELDS]
    msg.is_bigendian, msg.point_step, msg.row_step, msg.is_dense = False, 16, 16 * int(points.shape[0]), True
    msg.data = data.tobytes()
    return msg


_POINT_TYPES = {PointField.FLOAT32: "f4", PointField.FLOAT64: "f8", PointField.UINT32: "u4", PointField.INT32: "i4",
                PointField.UINT16: "u2", PointField.INT16: "i2", PointField.UINT8: "u1", PointField.INT8: "i1"}


def points_from_cloud(msg: PointCloud2, where: str = "cloud") -> tuple[np.ndarray, np.ndarray | None]:
    """(xyz (N, 3) float64, label (N,) int or None) from any PointCloud2 with x, y, z fields."""
    fields = {f.name: f for f in msg.fields}
    for name in ("x", "y", "z"):
        if name not in fields:
            raise ValueError(f"{where}: fields: no '{name}' field (has {sorted(fields)})")
    n = int(msg.width) * int(msg.height)
    if msg.point_step <= 0 or len(msg.data) != msg.row_step * msg.height or msg.row_step < msg.width * msg.point_step:
        raise ValueError(f"{where}: data: {len(msg.data)} bytes do not fit width {msg.width}, height {msg.height}, "
                         f"point_step {msg.point_step}, row_step {msg.row_step}")
    order = ">" if msg.is_bigendian else "<"
    names = [name for name in ("x", "y", "z", "label") if name in fields]
    for name in names:
        f = fields[name]
        if f.datatype not in _POINT_TYPES or f.offset + np.dtype(_POINT_TYPES[f.datatype]).itemsize > msg.point_step:
            raise ValueError(f"{where}: fields: '{name}' has an unsupported datatype ({f.datatype}) or lies outside "
                             f"the point (offset {f.offset}, point_step {msg.point_step})")
    dtype = np.dtype({"names": names, "formats": [order + _POINT_TYPES[fields[k].datatype] for k in names],
                      "offsets": [fields[k].offset for k in names], "itemsize": msg.point_step})
    raw = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.row_step)[:, :msg.width * msg.point_step]
    points = np.ascontiguousarray(raw).reshape(-1).view(dtype)[:n]
    xyz = np.column_stack([points["x"], points["y"], points["z"]]).astype(float)
    return xyz, (points["label"].astype(int) if "label" in names else None)
