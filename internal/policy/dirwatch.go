package policy

// dirWatcher reports changes to the entries of the directories it
// watches, each as the path of the entry (or of the directory itself, when
// it is the directory that went).
type dirWatcher interface {
	Add(dir string) error
	Remove(dir string) error
	Events() <-chan string
	Errors() <-chan error
	Close() error
}
