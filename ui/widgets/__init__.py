"""The console's widgets: each draws one kind of view state and holds no inspection logic."""
