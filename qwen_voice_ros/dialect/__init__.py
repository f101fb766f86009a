"""dialect capability (no rclpy imports)."""
