"""tts capability (no rclpy imports)."""
