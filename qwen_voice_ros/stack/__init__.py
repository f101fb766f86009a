"""stack capability (no rclpy imports)."""
