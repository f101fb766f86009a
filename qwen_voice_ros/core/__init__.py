"""core capability (no rclpy imports)."""
