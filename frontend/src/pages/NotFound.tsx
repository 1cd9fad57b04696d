import { Link } from 'react-router-dom';
import { Page } from '../components/common';

export function NotFound() {
  return (
    <Page title="Page not found">
      <p>There is no such page in the dashboard. <Link to="/">Go to the overview</Link>.</p>
    </Page>
  );
}
