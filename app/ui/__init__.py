"""The Kivy touch screen: App, screens, widgets, and the bridge from device threads to the UI."""
