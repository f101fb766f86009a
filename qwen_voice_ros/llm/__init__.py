"""llm capability (no rclpy imports)."""
