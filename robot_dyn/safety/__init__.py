"""Safety: safe sets, CBF safety filter (nominal QP and robust SOCP), MPC. No rclpy here."""
