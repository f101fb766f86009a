"""audio capability (no rclpy imports)."""
